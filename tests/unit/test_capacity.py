"""The capacity class and the verification verdict: pure, from fingerprint and benchmark."""

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from hashgrid.capacity.gpus import KNOWN_GPUS, known_model
from hashgrid.capacity.verdict import (
    CPU,
    GPU_SMALL,
    GPU_TIERS,
    REFERENCE_MODEL,
    UNUSABLE,
    UNVERIFIED,
    gpu_tier,
    hardware_class,
    judge,
)
from hashgrid.contracts.agent import Benchmark, Fingerprint, GpuInfo, VerificationReport
from hashgrid.models.tiny import TINY_MODEL_NAME

GIB = 2**30
MIB = 2**20


def gpu(index: int, name: str, total: int, **fields: object) -> GpuInfo:
    values: dict[str, object] = {
        "index": index,
        "uuid": f"GPU-{index}",
        "name": name,
        "memory_total_bytes": total,
        "memory_free_bytes": total // 2,
        **fields,
    }
    return GpuInfo.model_validate(values)


def node(*gpus: GpuInfo) -> Fingerprint:
    return Fingerprint(
        hostname="rig-1",
        os="Linux 6.1",
        arch="x86_64",
        cpu_model="AMD EPYC 9654",
        cpu_count=64,
        memory_total_bytes=512 * GIB,
        memory_available_bytes=480 * GIB,
        gpus=list(gpus),
        disk_total_bytes=4000 * GIB,
        disk_free_bytes=3000 * GIB,
    )


def benchmark(**fields: object) -> Benchmark:
    values: dict[str, object] = {
        "model": REFERENCE_MODEL,
        "engine": "llama-cpp-python 0.3.36",
        "gpu_offload": False,
        "prompt_tokens": 129,
        "generated_tokens": 128,
        "prompt_tokens_per_s": 50_000.0,
        "generation_tokens_per_s": 10_000.0,
        "seconds": 0.5,
        **fields,
    }
    return Benchmark.model_validate(values)


def ran(**fields: object) -> VerificationReport:
    return VerificationReport(benchmark=benchmark(**fields))


ON_GPU = ran(gpu_offload=True)


def test_the_reference_model_is_the_one_the_tiny_generator_writes() -> None:
    assert REFERENCE_MODEL == TINY_MODEL_NAME


def test_a_node_without_gpus_is_of_class_cpu_with_no_problems() -> None:
    verdict = judge(node(), ran())
    assert verdict.capacity_class == CPU
    assert verdict.problems == []


# What NVML reports for real cards: name and total memory in MiB.
@pytest.mark.parametrize(
    ("name", "mib", "tier"),
    [
        ("NVIDIA H200", 143771, "gpu-141g"),
        ("NVIDIA B200", 183359, "gpu-141g"),
        ("NVIDIA H100 80GB HBM3", 81559, "gpu-80g"),
        ("NVIDIA H100 NVL", 95830, "gpu-80g"),
        ("NVIDIA A100-SXM4-80GB", 81920, "gpu-80g"),
        ("NVIDIA A100-PCIE-40GB", 40960, "gpu-24g"),
        ("NVIDIA L40S", 46068, "gpu-48g"),
        ("NVIDIA RTX A6000", 49140, "gpu-48g"),
        ("NVIDIA L4", 23034, "gpu-24g"),
        ("NVIDIA A10", 23028, "gpu-24g"),
        ("NVIDIA GeForce RTX 4090", 24564, "gpu-24g"),
        ("Tesla T4", 15360, GPU_SMALL),
        ("NVIDIA GeForce RTX 3070", 8192, GPU_SMALL),
    ],
)
def test_real_gpus_get_their_tier_and_pass_the_check(name: str, mib: int, tier: str) -> None:
    verdict = judge(node(gpu(0, name, mib * MIB)), ON_GPU)
    assert verdict.capacity_class == tier
    assert verdict.problems == []


def test_several_gpus_add_a_count_and_the_smallest_sets_the_tier() -> None:
    eight = node(*(gpu(i, "NVIDIA H100 80GB HBM3", 81559 * MIB, uuid=f"GPU-{i}") for i in range(8)))
    assert judge(eight, ON_GPU).capacity_class == "gpu-80g-x8"
    mixed = node(gpu(0, "NVIDIA H100 PCIe", 81559 * MIB), gpu(1, "NVIDIA L4", 23034 * MIB))
    assert judge(mixed, ON_GPU).capacity_class == "gpu-24g-x2"


def test_quarantined_gpus_count_for_nothing_and_are_noted_without_refusing() -> None:
    reason = "XID 79 (GPU has fallen off the bus)"
    two = node(
        gpu(0, "NVIDIA H200", 143771 * MIB),
        gpu(1, "NVIDIA H200", 143771 * MIB, quarantined=True, quarantine_reason=reason),
    )
    verdict = judge(two, ON_GPU)
    assert verdict.capacity_class == "gpu-141g"
    assert verdict.problems == []
    assert verdict.passed
    assert verdict.notes == [f"GPU 1 (NVIDIA H200) is quarantined: {reason}"]
    none_left = node(gpu(0, "NVIDIA H200", 143771 * MIB, quarantined=True))
    assert judge(none_left, ran()).capacity_class == UNUSABLE


def _twice(fp: Fingerprint) -> None:
    fp.gpus.append(fp.gpus[0].model_copy(update={"index": 1}))


def _same_index(fp: Fingerprint) -> None:
    fp.gpus.append(fp.gpus[0].model_copy(update={"uuid": "GPU-other"}))


def _free_over_total(fp: Fingerprint) -> None:
    fp.gpus[0].memory_free_bytes = fp.gpus[0].memory_total_bytes + GIB


def _wrong_memory(fp: Fingerprint) -> None:
    fp.gpus[0].name = "NVIDIA GeForce RTX 4090"


def _unknown(fp: Fingerprint) -> None:
    fp.gpus[0].name = "Acme Matrix Engine 9000"


def _no_memory(fp: Fingerprint) -> None:
    fp.gpus[0].memory_total_bytes = 0
    fp.gpus[0].memory_free_bytes = 0


def _ram_over_total(fp: Fingerprint) -> None:
    fp.memory_available_bytes = fp.memory_total_bytes + GIB


def _disk_over_total(fp: Fingerprint) -> None:
    fp.disk_free_bytes = (fp.disk_total_bytes or 0) + 1


def _no_cpus(fp: Fingerprint) -> None:
    fp.cpu_count = 0


@pytest.mark.parametrize(
    ("break_it", "problem"),
    [
        (_twice, "GPU GPU-0 is reported 2 times"),
        (_same_index, "GPU index 0 is reported 2 times"),
        (_free_over_total, "GPU 0 (NVIDIA H100 80GB HBM3) reports 80.6 GiB free but only 79.6"),
        (
            _wrong_memory,
            "GPU 0 (NVIDIA GeForce RTX 4090) reports 79.6 GiB, but a RTX 4090 has 24 GB",
        ),
        (_no_memory, "GPU 0 (NVIDIA H100 80GB HBM3) reports no memory"),
        (_ram_over_total, "reports 513.0 GiB of memory available but only 512.0 GiB in all"),
        (_disk_over_total, "of disk free but only"),
        (_no_cpus, "reports 0 CPUs"),
    ],
)
def test_an_inconsistent_fingerprint_refuses_the_node(
    break_it: Callable[[Fingerprint], None], problem: str
) -> None:
    fp = node(gpu(0, "NVIDIA H100 80GB HBM3", 81559 * MIB))
    assert judge(fp, ON_GPU).problems == []
    break_it(fp)
    verdict = judge(fp, ON_GPU)
    assert len(verdict.problems) == 1, verdict.problems
    assert problem in verdict.problems[0], verdict.problems
    assert not verdict.passed
    assert verdict.reason().startswith("verification failed: ")


def test_an_unknown_gpu_model_is_noted_and_held_to_the_floor_of_any_gpu() -> None:
    fp = node(gpu(0, "Acme Matrix Engine 9000", 81559 * MIB))
    verdict = judge(fp, ran(gpu_offload=True, generation_tokens_per_s=10.0, seconds=13.0))
    assert verdict.passed, verdict.problems
    assert verdict.notes == [
        "GPU 0 (Acme Matrix Engine 9000) is not a model this control plane knows; memory unchecked"
    ]
    slow = judge(fp, ran(gpu_offload=True, generation_tokens_per_s=4.0, seconds=33.0))
    assert not slow.passed
    assert (
        "under the 4.9 expected (Acme Matrix Engine 9000 is not in the public" in (slow.problems[0])
    )


def test_a_node_claiming_an_h100_whose_benchmark_ran_on_the_cpu_is_refused_naming_both() -> None:
    h100 = node(gpu(0, "NVIDIA H100 80GB HBM3", 81559 * MIB))
    verdict = judge(h100, ran(gpu_offload=False, generation_tokens_per_s=2345.0))
    assert verdict.capacity_class == "gpu-80g"  # the class is the hardware's; admission refuses
    assert not verdict.passed
    assert verdict.problems == [
        "claims 1 GPU(s) (NVIDIA H100 80GB HBM3), but the benchmark ran on the CPU "
        "(gpu_offload false, 2,345 tokens/s generated): llama.cpp on this node did not use them"
    ]
    assert verdict.reason() == "verification failed: " + verdict.problems[0]


def test_a_gpu_far_slower_than_the_one_claimed_is_refused_with_claim_figure_and_floor() -> None:
    h100 = node(gpu(0, "NVIDIA H100 80GB HBM3", 81559 * MIB))
    verdict = judge(h100, ran(gpu_offload=True, generation_tokens_per_s=20.0, seconds=7.0))
    assert verdict.problems == [
        "claims NVIDIA H100 80GB HBM3, but generated the reference model at only 20.0 tokens/s, "
        "under the 31.4 expected (an H100 generates Llama-3-8B at 62.9 tokens/s or more in the "
        "public llama.cpp table): the machine is slower than claimed, shared or throttled"
    ]


def test_a_gpu_at_or_above_its_floor_passes_and_says_what_it_was_measured_against() -> None:
    h100 = node(gpu(0, "NVIDIA H100 80GB HBM3", 81559 * MIB))
    verdict = judge(h100, ran(gpu_offload=True, generation_tokens_per_s=3000.0))
    assert verdict.passed
    assert verdict.reason() == (
        "verification passed: generated the reference model at 3,000 tokens/s on NVIDIA H100 "
        "80GB HBM3, at least 31 expected (an H100 generates Llama-3-8B at 62.9 tokens/s or more "
        "in the public llama.cpp table)"
    )


def test_several_gpus_are_held_to_the_floor_of_the_slowest_claimed() -> None:
    mixed = node(gpu(0, "NVIDIA H100 PCIe", 81559 * MIB), gpu(1, "NVIDIA RTX 4000 Ada", 20 * GIB))
    # 20 tokens/s: under an H100's floor (31.4), over an RTX 4000 Ada's (10.3).
    verdict = judge(mixed, ran(gpu_offload=True, generation_tokens_per_s=20.0, seconds=7.0))
    assert verdict.passed, verdict.problems
    assert "NVIDIA H100 PCIe, NVIDIA RTX 4000 Ada" in verdict.reason()


def test_a_cpu_node_is_held_to_the_cpu_floor() -> None:
    assert judge(node(), ran(generation_tokens_per_s=150.0, seconds=1.0)).passed
    slow = judge(node(), ran(generation_tokens_per_s=50.0, seconds=3.0))
    assert slow.problems == [
        "has no GPU, but generated the reference model at only 50.0 tokens/s, under the 100.0 "
        "expected (a node with no GPU is held to the CPU floor): the machine is slower than "
        "claimed, shared or throttled"
    ]


def test_a_benchmark_on_a_gpu_the_node_does_not_report_is_flagged() -> None:
    verdict = judge(node(), ON_GPU)
    assert verdict.problems == ["the benchmark ran on a GPU, but the node reports no usable GPU"]


def test_a_starved_node_is_refused() -> None:
    problems = judge(node(), ran(prompt_tokens_per_s=30.0, seconds=60.0)).problems
    assert len(problems) == 1
    assert problems[0].startswith("prompt ran at 30 tokens/s, far below any healthy node")


def test_speeds_that_do_not_fit_the_run_time_are_flagged() -> None:
    problems = judge(node(), ran(prompt_tokens_per_s=200.0, seconds=0.1)).problems
    assert problems == ["the benchmark's speeds need 0.658 s, more than the 0.100 s it took in all"]


def test_a_benchmark_of_another_model_is_flagged() -> None:
    problems = judge(node(), ran(model="llama-3-8b")).problems
    assert problems == [
        "the benchmark ran 'llama-3-8b', not the reference model 'tiny-llama': "
        "its speeds compare with no other node's"
    ]


def test_a_failed_benchmark_leaves_the_node_unverified_with_the_reason() -> None:
    verdict = judge(node(), VerificationReport(error="llama.cpp could not load the model"))
    assert verdict.capacity_class == UNVERIFIED
    assert verdict.problems == ["the benchmark did not run: llama.cpp could not load the model"]


def test_a_report_carries_a_benchmark_or_an_error_never_both_or_neither() -> None:
    with pytest.raises(ValidationError):
        VerificationReport()
    with pytest.raises(ValidationError):
        VerificationReport(benchmark=benchmark(), error="also failed")
    with pytest.raises(ValidationError):
        benchmark(generation_tokens_per_s=-1.0)
    with pytest.raises(ValidationError):
        benchmark(prompt_tokens_per_s=float("inf"))


def test_model_names_match_as_whole_words() -> None:
    assert known_model("NVIDIA A100-SXM4-80GB") == ("A100", (40, 80))
    assert known_model("NVIDIA A10") == ("A10", (24,))
    assert known_model("NVIDIA H20") == ("H20", (96,))
    assert known_model("NVIDIA H200 NVL") == ("H200", (141,))
    assert known_model("NVIDIA GeForce RTX 4070 Ti SUPER") == ("RTX 4070 TI SUPER", (16,))
    assert known_model("NVIDIA RTX A2000") is None


# A consistent node: known cards at their nominal size, some perhaps quarantined.
_cards = st.sampled_from([(model, size) for model, sizes in KNOWN_GPUS for size in sizes])


@st.composite
def consistent_nodes(draw: st.DrawFn) -> Fingerprint:
    cards = draw(st.lists(st.tuples(_cards, st.booleans()), min_size=1, max_size=8))
    return node(
        *(
            gpu(i, f"NVIDIA {model}", size * GIB, uuid=f"GPU-{i}", quarantined=broken)
            for i, ((model, size), broken) in enumerate(cards)
        )
    )


def _rank(capacity_class: str) -> int:
    """Tiers from the smallest up; the count suffix does not matter here."""
    tiers = [UNUSABLE, GPU_SMALL, *reversed([t for t, _ in GPU_TIERS])]
    return tiers.index(capacity_class.split("-x")[0])


@given(consistent_nodes())
def test_a_consistent_node_passes_with_a_note_per_quarantined_gpu(fp: Fingerprint) -> None:
    verdict = judge(fp, ON_GPU if any(not g.quarantined for g in fp.gpus) else ran())
    quarantined = [g for g in fp.gpus if g.quarantined]
    assert verdict.problems == []
    assert len(verdict.notes) == len(quarantined)
    assert all("is quarantined" in n for n in verdict.notes)


@given(consistent_nodes())
def test_the_class_counts_usable_gpus_and_promises_no_more_than_each_has(fp: Fingerprint) -> None:
    """A model that fits the class's tier fits every GPU a replica may use."""
    usable = [g for g in fp.gpus if not g.quarantined]
    capacity_class = hardware_class(fp)
    if not usable:
        assert capacity_class == UNUSABLE
        return
    assert capacity_class.endswith(f"-x{len(usable)}") == (len(usable) > 1)
    assert all(_rank(gpu_tier(g.memory_total_bytes)) >= _rank(capacity_class) for g in usable)
    assert any(_rank(gpu_tier(g.memory_total_bytes)) == _rank(capacity_class) for g in usable)


@given(st.integers(0, 400 * GIB), st.integers(0, 400 * GIB))
def test_more_memory_never_means_a_lower_tier(a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert _rank(gpu_tier(low)) <= _rank(gpu_tier(high))
