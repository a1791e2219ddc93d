"""The generation floors for the reference model, and their table against the public data."""

import csv
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hashgrid.capacity.gpus import known_model
from hashgrid.capacity.ranges import (
    CPU_FLOOR_TOKENS_PER_S,
    FLOOR_SHARE,
    SLOWEST_8B_GENERATION,
    SLOWEST_ANY_GPU_8B,
    floor_for,
    gpu_floor,
)

# The shared data sets sit beside the repository (/work/shared/data); absent elsewhere.
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "gpu-llamacpp-bench"
SPEEDS = DATA / "llama3_llamacpp_tokens_per_s.csv"


def _from_data() -> tuple[dict[str, float], float]:
    """The slowest Llama-3-8B generation figure of each NVIDIA GPU model, and of any GPU."""
    slowest: dict[str, float] = {}
    any_gpu = float("inf")
    with SPEEDS.open() as f:
        for row in csv.DictReader(f):
            if row["metric"] != "generation_tokens_per_s_1024" or row["model_size"] != "Llama-3-8B":
                continue
            if not row["value"]:  # out of memory
                continue
            value = float(row["value"])
            any_gpu = min(any_gpu, value)
            if row["gpu"].startswith("M"):  # Apple silicon: no NVML, never a node's claim
                continue
            name = f"RTX {row['gpu']}" if row["gpu"][0].isdigit() else row["gpu"]
            known = known_model(name)
            assert known is not None, name
            slowest[known[0]] = min(slowest.get(known[0], value), value)
    return slowest, any_gpu


@pytest.mark.skipif(not SPEEDS.is_file(), reason="the shared data sets are not beside the repo")
def test_the_floor_table_is_the_public_data_file_s_slowest_figures() -> None:
    slowest, any_gpu = _from_data()
    assert slowest == SLOWEST_8B_GENERATION
    assert any_gpu == SLOWEST_ANY_GPU_8B


def test_every_gpu_in_the_table_is_a_model_the_memory_check_knows() -> None:
    for model in SLOWEST_8B_GENERATION:
        known = known_model(f"NVIDIA {model}")
        assert known is not None, model
        assert known[0] == model


def test_a_gpu_s_floor_is_half_its_slowest_public_figure() -> None:
    h100 = gpu_floor("NVIDIA H100 80GB HBM3")
    assert h100.tokens_per_s == pytest.approx(62.90 * FLOOR_SHARE)
    assert "an H100 generates Llama-3-8B at 62.9 tokens/s or more" in h100.basis
    # PCIe and SXM cards share a model name; the slowest of all its figures counts.
    assert gpu_floor("NVIDIA A100-SXM4-80GB").tokens_per_s == pytest.approx(45.45 * FLOOR_SHARE)


def test_a_gpu_the_table_lacks_is_held_to_the_slowest_gpu_in_it() -> None:
    for name in ("NVIDIA H200", "NVIDIA L4", "Tesla T4", "Acme Matrix Engine 9000"):
        floor = gpu_floor(name)
        assert floor.tokens_per_s == pytest.approx(SLOWEST_ANY_GPU_8B * FLOOR_SHARE)
        assert floor.basis.startswith(f"{name} is not in the public llama.cpp table")


def test_a_node_with_no_gpu_is_held_to_the_cpu_floor() -> None:
    assert floor_for([]).tokens_per_s == CPU_FLOOR_TOKENS_PER_S


@given(st.lists(st.sampled_from([*SLOWEST_8B_GENERATION, "H200", "L4"]), min_size=1, max_size=8))
def test_several_gpus_are_held_to_their_slowest_floor_which_no_gpu_floor_undercuts(
    models: list[str],
) -> None:
    names = [f"NVIDIA {m}" for m in models]
    floor = floor_for(names)
    assert floor.tokens_per_s == min(gpu_floor(n).tokens_per_s for n in names)
    assert floor.tokens_per_s >= SLOWEST_ANY_GPU_8B * FLOOR_SHARE
    # Any GPU's floor sits far below the CPU floor: a speed alone never tells GPU from CPU.
    assert floor.tokens_per_s < CPU_FLOOR_TOKENS_PER_S
