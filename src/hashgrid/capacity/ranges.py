"""The generation speed a node's benchmark must reach on the reference model, for what it claims.

Derived from the public llama.cpp Llama-3 table (github.com/XiongjieDai/GPU-Benchmarks-on-LLM-
Inference at aa72e0ec, May 2024; kept as `shared/data/gpu-llamacpp-bench`, which the package
never reads: `SLOWEST_8B_GENERATION` is written here, and a unit test recomputes it from the data
file when it is present).

What a range can honestly say. The reference model (2 layers of 64) does less of every kind of
work per generated token than Llama-3-8B: fewer weights to read, fewer FLOPs, no more kernels. So
a GPU generates it at least as fast as it generates Llama-3-8B, and the slowest 8B figure
measured on a GPU model (any quantization, any GPU count, one stream) is a floor for it. Half
of that is the floor used, for drivers, builds and clocks the table did not see. Nothing in the
table bounds the reference model from above: on a GPU it is bound by kernel launches and the
sampling loop, not by memory, so a real GPU beats its floor many times over and the range is
open above. A floor cannot tell an H100 from an RTX 4090; it catches a GPU that is far slower
than claimed, shared, throttled or not used at all. Where the benchmark ran (`gpu_offload`)
catches a claimed GPU the benchmark never touched, and `verdict.benchmark_problems` catches
figures that contradict the run's own time.

A GPU model the table lacks (H200, L4, T4) is held to the floor of the slowest GPU in the table
(an Apple M1 with 7 GPU cores), which any GPU should clear. A node with no GPU is held to the CPU
floor: a loaded 2-core VM generates thousands of tokens a second with the reference model.
"""

from dataclasses import dataclass

from hashgrid.capacity.gpus import known_model

# Slowest Llama-3-8B generation tokens/s measured on each GPU model, by `gpus.known_model`'s
# names (the table's GeForce cards, "4090 24GB", read as "RTX 4090"; A100 PCIe and SXM both A100).
SLOWEST_8B_GENERATION: dict[str, float] = {
    "RTX 4000 ADA": 20.58,
    "RTX 5000 ADA": 31.94,
    "A40": 33.28,
    "RTX A6000": 38.87,
    "RTX 4080": 40.29,
    "L40S": 42.48,
    "A100": 45.45,
    "RTX 3090": 45.55,
    "RTX 6000 ADA": 50.25,
    "RTX 4090": 52.12,
    "H100": 62.90,
    "RTX 3070": 70.94,
    "RTX 4070": 82.21,
    "RTX 3080": 106.40,
}
# The slowest GPU in the table at all (M1 7-core GPU, Llama-3-8B Q4_K_M).
SLOWEST_ANY_GPU_8B = 9.72
# Share of the slowest 8B figure the reference model must reach.
FLOOR_SHARE = 0.5
# A node with no GPU; far below any healthy machine, so only a broken or starved node trips it.
CPU_FLOOR_TOKENS_PER_S = 100.0


@dataclass(frozen=True)
class Floor:
    """The least generation tokens/s the reference model must reach, and why, in words."""

    tokens_per_s: float
    basis: str


def gpu_floor(name: str) -> Floor:
    """The floor for a GPU that NVML names `name`."""
    known = known_model(name)
    measured = SLOWEST_8B_GENERATION.get(known[0]) if known else None
    if known is None or measured is None:
        return Floor(
            SLOWEST_ANY_GPU_8B * FLOOR_SHARE,
            f"{name} is not in the public llama.cpp table; no GPU there generates Llama-3-8B "
            f"slower than {SLOWEST_ANY_GPU_8B:g} tokens/s",
        )
    return Floor(
        measured * FLOOR_SHARE,
        f"an {known[0]} generates Llama-3-8B at {measured:g} tokens/s or more "
        "in the public llama.cpp table",
    )


def floor_for(gpu_names: list[str]) -> Floor:
    """The floor for a node whose usable GPUs are `gpu_names` (none: the CPU floor). With
    several, the slowest one's: the benchmark may run on any of them."""
    if not gpu_names:
        return Floor(CPU_FLOOR_TOKENS_PER_S, "a node with no GPU is held to the CPU floor")
    return min((gpu_floor(n) for n in gpu_names), key=lambda f: f.tokens_per_s)
