"""Admitting a node that a test joined through the agent protocol, as its agent would: by
reporting a real benchmark of the reference model.

The benchmark runs once per test process, in a child process as the agent runs it, on this
machine. A node whose fingerprint claims GPUs (a fake NVML's, the boundary tests fake) reports
it as llama.cpp on those GPUs would: offloaded. Its speeds are this machine's, which clear every
GPU's floor (`capacity/ranges.py`).
"""

import functools
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from hashgrid.contracts.agent import Benchmark

VERIFICATION = "/api/v1/agent/verification"


@functools.cache
def measured() -> Benchmark:
    """This machine's benchmark of the reference model, run once (the agent's child process)."""
    with tempfile.TemporaryDirectory(prefix="hashgrid-admission-") as scratch:
        out = Path(scratch) / "benchmark.json"
        args = ["--dir", scratch, "--out", str(out)]
        subprocess.run([sys.executable, "-m", "hashgrid.agent.benchmark", *args], check=True)
        return Benchmark.model_validate_json(out.read_text())


def report_for(fingerprint: dict[str, Any]) -> dict[str, Any]:
    """The verification report a node with `fingerprint` sends (see the module's docstring)."""
    usable = [g for g in fingerprint.get("gpus", []) if not g.get("quarantined")]
    benchmark = measured().model_copy(update={"gpu_offload": bool(usable)})
    return {"benchmark": benchmark.model_dump(mode="json")}


def admit(node: httpx.Client, fingerprint: dict[str, Any]) -> dict[str, Any]:
    """Report the benchmark as the node (a client with its credential, left unopened for the
    test's own `with`); the verdict, which must have admitted it."""
    with httpx.Client(base_url=node.base_url, headers=node.headers, timeout=30) as reporting:
        r = reporting.post(VERIFICATION, json=report_for(fingerprint))
    assert r.status_code == 200, r.text
    verdict: dict[str, Any] = r.json()
    assert verdict["problems"] == [], verdict
    return verdict
