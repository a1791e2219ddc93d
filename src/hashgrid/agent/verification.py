"""Verification: benchmark the reference model, report it, and remember it was taken.

The agent verifies after its first join, again when the usable GPUs differ from those of the
last verification, whenever the operator asks (`hashgrid agent --verify`), and whenever the
control plane asks (a heartbeat ack's `verify`, after `hashgrid nodes verify`: `VerifyRequests`).
The benchmark runs in a child process bounded by `verify_timeout_s`, at join before the agent
follows assignments, so it never competes with an engine for the GPU; heartbeats go on
meanwhile. A benchmark that fails is reported as an error. The control plane's verdict admits
or refuses the node: a refused node keeps its agent running but gets no replicas.
"""

import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import structlog

from hashgrid.agent.control_plane import ControlPlane, Rejected, Unreachable
from hashgrid.agent.settings import AgentSettings
from hashgrid.common.backoff import Backoff
from hashgrid.common.paths import write_private
from hashgrid.common.processes import die_with_parent, stop_async
from hashgrid.common.waiting import sleep_unless
from hashgrid.contracts.agent import Benchmark, Fingerprint, Verification, VerificationReport

log = structlog.get_logger("hashgrid.agent.verification")

_STDERR_TAIL = 1500  # characters of a failed benchmark's stderr put in its error
_ERROR_MAX = 2000  # what the protocol takes


class VerifyRequests:
    """The control plane's requests to verify again, as heartbeat acks carry them.

    An ack says `verify` while the node is pending, so a request is ignored while a verification
    runs, and when its beat was sent before the last report was answered (the ack crossed the
    report that settled it).
    """

    def __init__(self) -> None:
        self.wanted = asyncio.Event()
        self._running = False
        self._settled_at = float("-inf")

    def asked(self, beat_sent_at: float) -> None:
        if not self._running and beat_sent_at > self._settled_at:
            self.wanted.set()

    def running(self) -> None:
        self._running = True
        self.wanted.clear()

    def settled(self) -> None:
        """The last verification's report was answered (or given up on)."""
        self._running = False
        self._settled_at = time.monotonic()
        self.wanted.clear()


def usable_gpus(fingerprint: Fingerprint) -> list[str]:
    return sorted(g.uuid for g in fingerprint.gpus if not g.quarantined)


def needed(settings: AgentSettings, node_id: str, fingerprint: Fingerprint) -> bool:
    """Whether to verify now: asked to, never verified as `node_id`, or the usable GPUs changed."""
    if settings.verify:
        return True
    try:
        taken = json.loads(settings.verification_path.read_text())
    except (OSError, ValueError):
        return True
    return (
        not isinstance(taken, dict)
        or taken.get("node_id") != node_id
        or taken.get("gpus") != usable_gpus(fingerprint)
    )


async def measure(settings: AgentSettings, fingerprint: Fingerprint) -> VerificationReport:
    """Run the benchmark in a child process; its figures, or why there are none. Never raises
    (but for cancellation, which kills the child)."""
    gpu = bool(usable_gpus(fingerprint))
    with tempfile.TemporaryDirectory(prefix="hashgrid-bench-") as scratch:
        out = Path(scratch) / "benchmark.json"
        args = ["--dir", str(settings.reference_dir), "--out", str(out)]
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hashgrid.agent.benchmark", *args, *(["--gpu"] * gpu),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )  # fmt: skip
        except OSError as e:
            return _failed(f"could not start the benchmark: {e}")
        try:
            _, stderr = await asyncio.wait_for(proc.communicate(), settings.verify_timeout_s)
        except TimeoutError:
            await stop_async(proc, grace_s=1.0)
            return _failed(f"the benchmark did not finish within {settings.verify_timeout_s:g} s")
        except BaseException:  # cancelled: the agent is stopping, and the child goes too
            await stop_async(proc, grace_s=1.0)
            raise
        if proc.returncode != 0:
            tail = stderr.decode(errors="replace").strip()[-_STDERR_TAIL:]
            return _failed(f"the benchmark exited with {proc.returncode}: {tail or 'no output'}")
        try:
            return VerificationReport(benchmark=Benchmark.model_validate_json(out.read_text()))
        except (OSError, ValueError) as e:
            return _failed(f"the benchmark left no usable result: {e}")


def _failed(error: str) -> VerificationReport:
    return VerificationReport(error=error[:_ERROR_MAX])


async def deliver(
    stop: asyncio.Event,
    control_plane: ControlPlane,
    settings: AgentSettings,
    node_id: str,
    fingerprint: Fingerprint,
    report: VerificationReport,
) -> Verification | None:
    """Send `report` until the control plane takes it (then note that this node is verified)
    or refuses it, or `stop` is set. The verdict, or None."""
    backoff = Backoff()
    while not stop.is_set():
        try:
            verdict = await control_plane.verify(report)
        except Rejected as e:
            log.warning("verification report rejected", why=str(e))
            return None
        except Unreachable:
            # RuntimeError: the client was closed under the call, which is how shutdown ends it.
            await sleep_unless(stop, backoff.next_delay())
            continue
        taken = {
            "node_id": node_id,
            "gpus": usable_gpus(fingerprint),
            "capacity_class": verdict.capacity_class,
            "at": datetime.now(UTC).isoformat(),
        }
        write_private(settings.verification_path, json.dumps(taken))
        say = log.warning if verdict.problems else log.info
        say(
            "verification refused: no replicas until it passes" if verdict.problems else "verified",
            capacity_class=verdict.capacity_class,
            problems=verdict.problems,
            generation_tokens_per_s=(
                round(report.benchmark.generation_tokens_per_s) if report.benchmark else None
            ),
        )
        return verdict
    return None
