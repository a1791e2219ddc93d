"""How much memory one replica needs: its weights, the KV cache for its context, and the engine.

The KV cache holds, for every token of every sequence the engine serves at once, one key and
one value vector per layer and KV head: `2 * layers * kv_heads * head_dim * bytes_per_element`
bytes per token (Llama-3-8B: 2 * 32 * 8 * 128 * 2 = 128 KiB; Llama-3-70B: 320 KiB). When the
architecture is not known, the figure per token is taken from the weights' size, scaled by the
square root from Llama-3-8B in bf16 (16.06 GB of weights, 128 KiB per token): that gives 379 KiB
for 70B (true: 320 KiB) and 909 KiB for 405B (true: 504 KiB), so it errs high for big models and
low for quantized ones (whose weights shrink but whose KV cache stays 16-bit). Give the
architecture where it matters.
"""

import math
from dataclasses import dataclass

# Llama-3-8B in bf16: the point the fallback is scaled from.
REFERENCE_WEIGHTS_BYTES = 16_060_522_496
REFERENCE_KV_BYTES_PER_TOKEN = 2 * 32 * 8 * 128 * 2


@dataclass(frozen=True, slots=True)
class Architecture:
    """The figures of a transformer that size its KV cache."""

    layers: int
    kv_heads: int  # key/value heads (fewer than attention heads under grouped-query attention)
    head_dim: int
    kv_bytes_per_element: int = 2  # fp16/bf16 cache; 1 for an fp8 cache

    @property
    def kv_bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * self.kv_bytes_per_element


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    weights_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int  # engine runtime over every rank: CUDA context, activations, buffers

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.overhead_bytes

    def per_gpu_bytes(self, tensor_parallel_size: int) -> int:
        """What each of `tensor_parallel_size` GPUs holds (tensor parallelism splits all three)."""
        return math.ceil(self.total_bytes / tensor_parallel_size)


def kv_bytes_per_token(weights_bytes: int, architecture: Architecture | None = None) -> int:
    """KV-cache bytes per token: exact from the architecture, else the fallback of the module
    docstring."""
    if architecture is not None:
        return architecture.kv_bytes_per_token
    scale = math.sqrt(max(weights_bytes, 0) / REFERENCE_WEIGHTS_BYTES)
    return max(1, round(REFERENCE_KV_BYTES_PER_TOKEN * scale))


def estimate(
    weights_bytes: int,
    context_length: int,
    *,
    sequences: int = 1,
    architecture: Architecture | None = None,
    overhead_bytes_per_rank: int = 0,
    tensor_parallel_size: int = 1,
) -> MemoryEstimate:
    """Memory for one replica serving `sequences` sequences of `context_length` tokens at once."""
    if weights_bytes < 0 or context_length < 0 or sequences < 0 or tensor_parallel_size < 1:
        raise ValueError("sizes must not be negative and tensor_parallel_size at least 1")
    kv = kv_bytes_per_token(weights_bytes, architecture) * context_length * sequences
    return MemoryEstimate(weights_bytes, kv, overhead_bytes_per_rank * tensor_parallel_size)
