"""The memory estimate a replica is placed by: weights, KV cache for its context, overhead."""

import pytest

from hashgrid.scheduler.memory import (
    REFERENCE_KV_BYTES_PER_TOKEN,
    REFERENCE_WEIGHTS_BYTES,
    Architecture,
    estimate,
    kv_bytes_per_token,
)

KIB = 2**10
GIB = 2**30
LLAMA_3_8B = Architecture(layers=32, kv_heads=8, head_dim=128)
LLAMA_3_70B = Architecture(layers=80, kv_heads=8, head_dim=128)


def test_kv_per_token_from_the_architecture_counts_keys_and_values_of_every_layer() -> None:
    assert LLAMA_3_8B.kv_bytes_per_token == 128 * KIB
    assert LLAMA_3_70B.kv_bytes_per_token == 320 * KIB
    fp8_cache = Architecture(layers=32, kv_heads=8, head_dim=128, kv_bytes_per_element=1)
    assert fp8_cache.kv_bytes_per_token == 64 * KIB


def test_the_architecture_wins_over_the_fallback() -> None:
    assert kv_bytes_per_token(10**12, LLAMA_3_8B) == 128 * KIB


def test_the_fallback_is_exact_at_its_reference_model() -> None:
    assert kv_bytes_per_token(REFERENCE_WEIGHTS_BYTES) == REFERENCE_KV_BYTES_PER_TOKEN


def test_the_fallback_grows_with_the_square_root_of_the_weights() -> None:
    four_times = kv_bytes_per_token(4 * REFERENCE_WEIGHTS_BYTES)
    assert four_times == 2 * REFERENCE_KV_BYTES_PER_TOKEN


def test_the_fallback_stays_within_a_factor_of_two_of_llama_3_70b() -> None:
    guess = kv_bytes_per_token(141 * 10**9)  # 70B parameters in bf16
    assert LLAMA_3_70B.kv_bytes_per_token / 2 < guess < 2 * LLAMA_3_70B.kv_bytes_per_token


def test_the_fallback_never_reaches_zero() -> None:
    assert kv_bytes_per_token(0) == 1


def test_estimate_adds_weights_kv_cache_for_the_context_and_overhead_per_rank() -> None:
    e = estimate(
        16 * GIB,
        8192,
        sequences=4,
        architecture=LLAMA_3_8B,
        overhead_bytes_per_rank=GIB,
        tensor_parallel_size=2,
    )
    assert e.weights_bytes == 16 * GIB
    assert e.kv_cache_bytes == 128 * KIB * 8192 * 4  # 4 GiB
    assert e.overhead_bytes == 2 * GIB
    assert e.total_bytes == 22 * GIB
    assert e.per_gpu_bytes(2) == 11 * GIB


def test_kv_cache_grows_linearly_with_context_and_sequences() -> None:
    one = estimate(GIB, 1024, architecture=LLAMA_3_8B).kv_cache_bytes
    assert estimate(GIB, 2048, architecture=LLAMA_3_8B).kv_cache_bytes == 2 * one
    assert estimate(GIB, 1024, sequences=3, architecture=LLAMA_3_8B).kv_cache_bytes == 3 * one


def test_per_gpu_share_rounds_up_so_the_shares_cover_the_whole() -> None:
    e = estimate(10, 0)
    assert e.per_gpu_bytes(3) == 4
    assert 3 * e.per_gpu_bytes(3) >= e.total_bytes


@pytest.mark.parametrize("args", [(-1, 10, 1, 1), (1, -1, 1, 1), (1, 10, -1, 1), (1, 10, 1, 0)])
def test_estimate_refuses_negative_sizes_and_no_rank(args: tuple[int, int, int, int]) -> None:
    weights, context, sequences, tp = args
    with pytest.raises(ValueError, match="must not be negative"):
        estimate(weights, context, sequences=sequences, tensor_parallel_size=tp)
