"""The benchmark an agent runs at join, and the built-in GPU table against public data.

    python bench/verification.py [--runs 5] [--data ../shared/data]

1. Runs the join benchmark (`python -m hashgrid.agent.benchmark`, the child process the agent
   starts) `--runs` times and prints each run's prompt and generation tokens/s on the reference
   model, the median, and the whole child's wall time (Python start and imports included).
2. With the shared data sets at `--data`, checks `hashgrid.capacity.gpus` against them: every
   NVIDIA GPU in `hardware-power-specs` and `gpu-llamacpp-bench` should be known, with its
   listed memory, and prints the capacity class each would get beside its measured llama.cpp
   Llama-3-8B Q4_K_M generation speed (one stream), for scale, and the generation floor a node
   claiming it must reach on the reference model (`hashgrid.capacity.ranges`, which
   `tests/unit/test_ranges.py` checks against the same file).
"""

import argparse
import csv
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hashgrid.capacity.gpus import known_model, memory_matches
from hashgrid.capacity.ranges import gpu_floor
from hashgrid.capacity.verdict import gpu_tier

GIB = 2**30
REFERENCE_RUN = ("1", "Llama-3-8B", "Q4_K_M")  # the row shown beside each GPU's class


def run_benchmarks(runs: int) -> None:
    prompt: list[float] = []
    generation: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        for i in range(runs):
            out = Path(scratch) / "out.json"
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "hashgrid.agent.benchmark", "--dir", scratch,
                 "--out", str(out)],
                check=True,
            )  # fmt: skip
            wall = time.perf_counter() - started
            result = json.loads(out.read_text())
            prompt.append(result["prompt_tokens_per_s"])
            generation.append(result["generation_tokens_per_s"])
            print(
                f"run {i + 1}: prompt {result['prompt_tokens']} tokens at "
                f"{result['prompt_tokens_per_s']:,.0f}/s, generation "
                f"{result['generated_tokens']} at {result['generation_tokens_per_s']:,.0f}/s, "
                f"benchmark {result['seconds']:.3f} s, child process {wall:.2f} s"
            )
    print(
        f"median: prompt {statistics.median(prompt):,.0f} tokens/s, "
        f"generation {statistics.median(generation):,.0f} tokens/s ({result['engine']})"
    )


def _gb(name: str) -> int | None:
    found = re.search(r"(\d+)\s*GB", name)
    return int(found.group(1)) if found else None


def check_table(data: Path) -> int:
    """Print each public GPU's class; the number the built-in table gets wrong."""
    specs = data / "hardware-power-specs" / "asic_gpu_power_specs.csv"
    speeds = data / "gpu-llamacpp-bench" / "llama3_llamacpp_tokens_per_s.csv"
    gpus: dict[str, float | None] = {}
    with specs.open() as f:
        for row in csv.DictReader(f):
            if row["category"] == "gpu" and row["vendor"] == "NVIDIA":
                gpus.setdefault(row["model"], None)
    with speeds.open() as f:
        for row in csv.DictReader(f):
            if row["gpu"].startswith("M"):  # Apple silicon: no NVML, no class here
                continue
            # The source writes GeForce cards by number alone ("4090 24GB").
            name = f"RTX {row['gpu']}" if row["gpu"][0].isdigit() else row["gpu"]
            one_8b_q4 = (row["num_gpus"], row["model_size"], row["quant"]) == REFERENCE_RUN
            if row["metric"] == "generation_tokens_per_s_1024" and one_8b_q4 and row["value"]:
                gpus[name] = float(row["value"])
            else:
                gpus.setdefault(name, None)
    wrong = 0
    print(
        f"\n{'GPU':28} {'known as':18} {'memory':>7}  {'class':10} {'8B Q4 gen/s':>11} "
        f"{'floor/s':>8}"
    )
    for name, speed in sorted(gpus.items()):
        gb = _gb(name)
        known = known_model(name)
        ok = known is not None and gb is not None and memory_matches(gb * GIB, known[1])
        wrong += not ok
        print(
            f"{name:28} {known[0] if known else 'UNKNOWN':18} {gb or '?':>5}GB  "
            f"{gpu_tier((gb or 0) * GIB):10} {f'{speed:.0f}' if speed else '-':>11} "
            f"{gpu_floor(name).tokens_per_s:>8.1f}"
            f"{'' if ok else '   <- table disagrees'}"
        )
    print(f"{len(gpus) - wrong} of {len(gpus)} GPUs known with their listed memory")
    return wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    run_benchmarks(args.runs)
    if args.data.is_dir():
        check_table(args.data)
    else:
        print(f"\nno data sets at {args.data}: GPU table not checked")


if __name__ == "__main__":
    main()
