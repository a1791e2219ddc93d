"""Runs exactly the replicas the control plane assigns: starts the missing, stops the extra,
and reports what becomes of each."""

import asyncio
import os
import time
from collections import deque
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import structlog

from hashgrid.agent.engines import ENGINES
from hashgrid.agent.loads import ServingEngine
from hashgrid.agent.probe import http_ok
from hashgrid.agent.reporter import Reporter
from hashgrid.agent.store import ModelStore, StoreError
from hashgrid.common.net import free_port
from hashgrid.common.processes import die_with_parent, stop_async
from hashgrid.contracts.agent import Assignment, ReplicaReport
from hashgrid.contracts.states import ReplicaStatus

log = structlog.get_logger("hashgrid.agent.supervisor")

LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class EngineConfig:
    bind_host: str  # where engines listen
    advertise_host: str  # how gateways reach them
    log_dir: Path
    ready_timeout_s: float
    store: ModelStore


class Supervisor:
    def __init__(self, config: EngineConfig, reporter: Reporter) -> None:
        self._config = config
        self._reporter = reporter
        self._running: dict[str, asyncio.Task[None]] = {}
        self._serving: dict[str, ServingEngine] = {}  # ready engines, until they stop or exit
        self._stopping = False
        self._stop_grace_s = 30.0  # set by the control plane with each assignment answer

    @property
    def replica_ids(self) -> set[str]:
        return set(self._running)

    def serving(self) -> list[ServingEngine]:
        """The engines ready and serving now: replica id, engine name, local port."""
        return list(self._serving.values())

    async def sync(self, assignments: list[Assignment], stop_grace_s: float = 30.0) -> None:
        """Make the running set equal the assigned set; level-triggered, safe to repeat.

        An engine no longer assigned gets SIGTERM and `stop_grace_s` to finish what it serves.
        """
        if self._stopping:
            return
        self._stop_grace_s = stop_grace_s
        wanted = {a.replica_id: a for a in assignments}
        for replica_id in set(self._running) - set(wanted):
            await self._stop(replica_id)
        for replica_id, assignment in wanted.items():
            task = self._running.get(replica_id)
            if task is None:
                self._running[replica_id] = asyncio.create_task(
                    self._run(assignment), name=f"replica-{replica_id}"
                )

    async def stop_all(self) -> None:
        """Stop every engine, and start none from now on."""
        self._stopping = True
        await asyncio.gather(*(self._stop(r) for r in list(self._running)))

    async def _stop(self, replica_id: str) -> None:
        task = self._running.pop(replica_id, None)
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def _run(self, assignment: Assignment) -> None:
        """One replica's life: launch, wait for health, watch; stop when cancelled."""
        replica_id = assignment.replica_id
        engine = ENGINES.get(assignment.engine)
        if engine is None:
            self._report(
                replica_id, ReplicaStatus.FAILED, reason=f"unknown engine {assignment.engine!r}"
            )
            return
        spec = assignment.model
        self._report(replica_id, ReplicaStatus.STARTING, reason=f"fetching {spec.source}")
        try:
            model_path = await self._config.store.fetch(
                spec.source, size_bytes=spec.size_bytes, sha256=spec.sha256
            )
        except (StoreError, ValueError) as e:
            self._report(replica_id, ReplicaStatus.FAILED, reason=f"model not available: {e}")
            return
        port = free_port(self._config.bind_host)
        log_path = self._config.log_dir / f"{replica_id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._report(replica_id, ReplicaStatus.STARTING)
        try:
            launch = engine.launch(assignment, str(model_path), self._config.bind_host, port)
        except ValueError as e:  # the spec does not fit this engine (e.g. GPUs vs tensor parallel)
            self._report(replica_id, ReplicaStatus.FAILED, reason=str(e))
            return
        with log_path.open("ab") as log_file:
            proc = await asyncio.create_subprocess_exec(
                *launch.argv,
                env={**os.environ, **launch.env},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        log.info("engine started", replica=replica_id, engine=engine.name, port=port, pid=proc.pid)
        try:
            if not await _wait_healthy(
                proc, port, engine.health_path, self._config.ready_timeout_s
            ):
                await stop_async(proc)
                why = (
                    f"engine exited with code {proc.returncode}"
                    if proc.returncode not in (None, -15)
                    else f"engine not healthy within {self._config.ready_timeout_s:.0f}s"
                )
                self._report(replica_id, ReplicaStatus.FAILED, reason=_with_tail(why, log_path))
                return
            self._config.store.touch(spec.source)  # in use: last to be evicted
            endpoint = f"http://{self._config.advertise_host}:{port}"
            self._report(replica_id, ReplicaStatus.READY, endpoint=endpoint)
            self._serving[replica_id] = ServingEngine(replica_id, engine.name, port)
            log.info("engine ready", replica=replica_id, endpoint=endpoint)
            code = await proc.wait()
            self._serving.pop(replica_id, None)
            log.warning("engine exited", replica=replica_id, code=code)
            self._report(
                replica_id,
                ReplicaStatus.FAILED,
                reason=_with_tail(f"engine exited with code {code}", log_path),
            )
        except asyncio.CancelledError:
            self._serving.pop(replica_id, None)
            await stop_async(proc, self._stop_grace_s)
            self._report(replica_id, ReplicaStatus.STOPPED)
            log.info("engine stopped", replica=replica_id)
            raise

    def _report(
        self,
        replica_id: str,
        status: ReplicaStatus,
        *,
        endpoint: str | None = None,
        reason: str | None = None,
    ) -> None:
        if status == ReplicaStatus.FAILED:
            log.warning("replica failed", replica=replica_id, reason=reason)
        self._reporter.report(
            replica_id, ReplicaReport(status=status, endpoint=endpoint, reason=reason)
        )


async def _wait_healthy(
    proc: asyncio.subprocess.Process, port: int, path: str, within_s: float
) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and proc.returncode is None:
        if await http_ok("127.0.0.1", port, path):
            return True
        with suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 0.25)
    return False


def _with_tail(reason: str, log_path: Path) -> str:
    try:
        with log_path.open(errors="replace") as f:
            tail = "".join(deque(f, maxlen=LOG_TAIL_LINES)).strip()
    except OSError:
        return reason
    return f"{reason}; last log lines:\n{tail}" if tail else reason
