"""A node's capacity class, whether its verification passes, and why: a pure function of its
fingerprint and the benchmark its agent ran after joining.

Classes, from the GPUs that are not quarantined:
- `cpu`: no GPU at all; replicas run on the CPU, in RAM.
- `gpu-small`, `gpu-24g`, `gpu-48g`, `gpu-80g`, `gpu-141g`: the memory tier of the smallest usable
  GPU, so a model that fits the tier fits any of the node's GPUs; `-xN` follows when the node
  has N > 1 usable GPUs (`gpu-80g-x8`). A tier's floor sits a little under its nominal size
  because NVML reports what is left after ECC and firmware reserves (an L4 "24 GB" shows 22.5 GiB).
- `unusable`: GPUs reported, every one quarantined.
- `unverified`: no benchmark result (it failed, or the report carried only an error); the
  hardware is not vouched for by a run.

Problems refuse the node (`server/nodes/admission.py`): each names the claim and the figure that
contradict each other or any healthy machine. Notes are for an operator's eye and refuse nothing
(a GPU the agent quarantined itself, a GPU model this control plane does not know). The speed
judgement is `ranges.py`: a floor per claimed GPU, open above, since the reference model is too
small for its speed to say more; a claimed GPU the benchmark did not run on (`gpu_offload`)
refuses the node whatever its speed.
"""

from collections import Counter
from dataclasses import dataclass, field

from hashgrid.capacity.gpus import known_model, memory_matches
from hashgrid.capacity.ranges import floor_for
from hashgrid.contracts.agent import Benchmark, Fingerprint, GpuInfo, VerificationReport

REFERENCE_MODEL = "tiny-llama"  # what `hashgrid.models.tiny` writes; the benchmark runs it

CPU = "cpu"
GPU_SMALL = "gpu-small"
UNUSABLE = "unusable"
UNVERIFIED = "unverified"
# (tier, least GiB per GPU), largest first.
GPU_TIERS: tuple[tuple[str, float], ...] = (
    ("gpu-141g", 130.0),
    ("gpu-80g", 74.0),
    ("gpu-48g", 44.0),
    ("gpu-24g", 22.0),
)

# Prompt speed below this on the reference model is no healthy machine, CPU or GPU: a loaded
# 2-core VM processes tens of thousands of prompt tokens a second with it.
MIN_PROMPT_TOKENS_PER_S = 100.0

_GIB = 2**30


@dataclass(frozen=True)
class Verdict:
    capacity_class: str
    problems: list[str] = field(default_factory=list)  # each refuses the node
    notes: list[str] = field(default_factory=list)  # for an operator; refuse nothing
    summary: str = ""  # what was measured against what, when it passed

    @property
    def passed(self) -> bool:
        return not self.problems

    def reason(self) -> str:
        """Why the node is admitted or refused, in one line for `nodes show`."""
        if self.problems:
            return "verification failed: " + "; ".join(self.problems)
        return "verification passed: " + self.summary


def judge(fingerprint: Fingerprint, report: VerificationReport) -> Verdict:
    """The class of capacity `fingerprint` offers, vouched for by `report`; problems refuse it."""
    problems, notes = hardware_problems(fingerprint), hardware_notes(fingerprint)
    if report.benchmark is None:
        problems.append(f"the benchmark did not run: {report.error}")
        return Verdict(UNVERIFIED, problems, notes)
    usable = usable_gpus(fingerprint)
    problems += benchmark_problems(report.benchmark, usable)
    return Verdict(hardware_class(fingerprint), problems, notes, _summary(report.benchmark, usable))


def _summary(benchmark: Benchmark, usable: list[GpuInfo]) -> str:
    floor = floor_for([g.name for g in usable])
    where = f"on {_claim(usable)}" if usable else "on the CPU"
    return (
        f"generated the reference model at {benchmark.generation_tokens_per_s:,.0f} tokens/s "
        f"{where}, at least {floor.tokens_per_s:,.0f} expected ({floor.basis})"
    )


def _claim(usable: list[GpuInfo]) -> str:
    names = Counter(g.name for g in usable)
    return ", ".join(f"{n} x {name}" if n > 1 else name for name, n in names.items())


def usable_gpus(fingerprint: Fingerprint) -> list[GpuInfo]:
    return [g for g in fingerprint.gpus if not g.quarantined]


def hardware_class(fingerprint: Fingerprint) -> str:
    """The class from the hardware alone (see the module's docstring)."""
    if not fingerprint.gpus:
        return CPU
    usable = usable_gpus(fingerprint)
    if not usable:
        return UNUSABLE
    tier = gpu_tier(min(g.memory_total_bytes for g in usable))
    return tier if len(usable) == 1 else f"{tier}-x{len(usable)}"


def gpu_tier(memory_total_bytes: int) -> str:
    gib = memory_total_bytes / _GIB
    for tier, floor in GPU_TIERS:
        if gib >= floor:
            return tier
    return GPU_SMALL


def hardware_problems(fp: Fingerprint) -> list[str]:
    """What in the fingerprint cannot be true: each refuses the node."""
    problems: list[str] = []
    if fp.cpu_count < 1:
        problems.append(f"reports {fp.cpu_count} CPUs")
    if fp.memory_total_bytes <= 0:
        problems.append("reports no memory")
    elif fp.memory_available_bytes > fp.memory_total_bytes:
        problems.append(
            f"reports {_gib(fp.memory_available_bytes)} of memory available "
            f"but only {_gib(fp.memory_total_bytes)} in all"
        )
    if (
        fp.disk_total_bytes is not None
        and fp.disk_free_bytes is not None
        and fp.disk_free_bytes > fp.disk_total_bytes
    ):
        problems.append(
            f"reports {_gib(fp.disk_free_bytes)} of disk free "
            f"but only {_gib(fp.disk_total_bytes)} in all"
        )
    for uuid, times in Counter(g.uuid for g in fp.gpus).items():
        if times > 1:
            problems.append(f"GPU {uuid} is reported {times} times")
    for index, times in Counter(g.index for g in fp.gpus).items():
        if times > 1:
            problems.append(f"GPU index {index} is reported {times} times")
    for gpu in fp.gpus:
        problems += _gpu_problems(gpu)
    return problems


def hardware_notes(fp: Fingerprint) -> list[str]:
    """What in the fingerprint needs an operator's eye but refuses nothing."""
    notes: list[str] = []
    for gpu in fp.gpus:
        which = f"GPU {gpu.index} ({gpu.name})"
        if gpu.quarantined:
            notes.append(f"{which} is quarantined: {gpu.quarantine_reason or 'no reason given'}")
        if known_model(gpu.name) is None:
            notes.append(f"{which} is not a model this control plane knows; memory unchecked")
    return notes


def _gpu_problems(gpu: GpuInfo) -> list[str]:
    which = f"GPU {gpu.index} ({gpu.name})"
    if gpu.memory_total_bytes <= 0:
        return [f"{which} reports no memory"]
    problems: list[str] = []
    if gpu.memory_free_bytes > gpu.memory_total_bytes:
        problems.append(
            f"{which} reports {_gib(gpu.memory_free_bytes)} free "
            f"but only {_gib(gpu.memory_total_bytes)} in all"
        )
    known = known_model(gpu.name)
    if known is not None and not memory_matches(gpu.memory_total_bytes, known[1]):
        model, sizes = known
        problems.append(
            f"{which} reports {_gib(gpu.memory_total_bytes)}, "
            f"but a {model} has {' or '.join(map(str, sizes))} GB"
        )
    return problems


def benchmark_problems(benchmark: Benchmark, usable: list[GpuInfo]) -> list[str]:
    """What in a benchmark disagrees with itself, the GPUs the node claims (`usable`), or the
    floor expected of them (`ranges.py`): each refuses the node."""
    problems: list[str] = []
    generation = benchmark.generation_tokens_per_s
    if benchmark.model != REFERENCE_MODEL:
        problems.append(
            f"the benchmark ran {benchmark.model!r}, not the reference model "
            f"{REFERENCE_MODEL!r}: its speeds compare with no other node's"
        )
    if usable and not benchmark.gpu_offload:
        problems.append(
            f"claims {len(usable)} GPU(s) ({_claim(usable)}), but the benchmark ran on the CPU "
            f"(gpu_offload false, {generation:,.0f} tokens/s generated): llama.cpp on this "
            "node did not use them"
        )
    if benchmark.gpu_offload and not usable:
        problems.append("the benchmark ran on a GPU, but the node reports no usable GPU")
    floor = floor_for([g.name for g in usable])
    if generation < floor.tokens_per_s and (benchmark.gpu_offload or not usable):
        where = f"claims {_claim(usable)}" if usable else "has no GPU"
        problems.append(
            f"{where}, but generated the reference model at only {generation:,.1f} tokens/s, "
            f"under the {floor.tokens_per_s:,.1f} expected ({floor.basis}): the machine is "
            "slower than claimed, shared or throttled"
        )
    if benchmark.prompt_tokens_per_s < MIN_PROMPT_TOKENS_PER_S:
        problems.append(
            f"prompt ran at {benchmark.prompt_tokens_per_s:.0f} tokens/s, far below any healthy "
            f"node (at least {MIN_PROMPT_TOKENS_PER_S:.0f}): the machine is starved or throttled"
        )
    # The speeds are the best round's; that round alone must fit in the whole run's time.
    least_s = (
        benchmark.prompt_tokens / benchmark.prompt_tokens_per_s
        + benchmark.generated_tokens / benchmark.generation_tokens_per_s
    )
    if least_s > benchmark.seconds * 1.01 + 0.001:
        problems.append(
            f"the benchmark's speeds need {least_s:.3f} s, "
            f"more than the {benchmark.seconds:.3f} s it took in all"
        )
    return problems


def _gib(n: int) -> str:
    return f"{n / _GIB:.1f} GiB"
