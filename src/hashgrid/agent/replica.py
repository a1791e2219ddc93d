"""One assigned replica's life on this node: fetch the model, launch the engine (or take over the
one an earlier agent left), watch it, and restart it with backoff whenever it fails, reporting
each step. The life ends only when the supervisor cancels it; the engine then stops."""

import asyncio
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog

from hashgrid.agent.engine_process import EngineProcess
from hashgrid.agent.engine_records import ENGINE_MARK, EngineRecord, EngineRecords
from hashgrid.agent.engines import ENGINES, EngineRuntime, Launch
from hashgrid.agent.loads import ServingEngine
from hashgrid.agent.probe import http_ok
from hashgrid.agent.progress import FetchProgress
from hashgrid.agent.recovery import Adopted
from hashgrid.agent.store import ModelStore, StoreError
from hashgrid.common.net import free_port
from hashgrid.common.restarts import Restarts
from hashgrid.contracts.agent import Assignment, ReplicaReport
from hashgrid.contracts.engines import FORMATS
from hashgrid.contracts.states import ReplicaStatus

log = structlog.get_logger("hashgrid.agent.replica")

LOG_TAIL_LINES = 20
# Once ready, an engine is probed this often; this many misses in a row and it is restarted.
PROBE_EVERY_S = 5.0
PROBE_WITHIN_S = 5.0
PROBE_MISSES = 3
# How long an engine that failed (never became ready, stopped answering) gets to exit.
STOP_FAILED_S = 10.0


@dataclass(frozen=True)
class EngineConfig:
    log_dir: Path
    records_dir: Path  # a record per running engine, for the next agent to find
    ready_timeout_s: float
    store: ModelStore
    restart_first_s: float = 1.0  # the first restart's backoff; doubles up to a minute
    # Where engines listen: the node's loopback only. Gateways reach them down the tunnels the
    # agent opened (`agent/tunnel.py`); nothing outside the node can.
    bind_host: str = "127.0.0.1"


class Reports(Protocol):
    def report(self, replica_id: str, report: ReplicaReport) -> None:
        """Queue what became of a replica for the control plane."""
        ...


@dataclass(frozen=True)
class Failure:
    reason: str  # the report's reason, the engine's last log lines included where it ran
    served_s: float  # how long the engine had been ready before it failed


class CannotRun(Exception):
    """A failure no restart can mend on this node (an unknown engine, a spec it cannot serve)."""


class ReplicaRunner:
    def __init__(
        self,
        assignment: Assignment,
        config: EngineConfig,
        reports: Reports,
        records: EngineRecords,
        *,
        adopted: Adopted | None = None,
        gone: bool = False,
    ) -> None:
        self._assignment = assignment
        self._id = assignment.replica_id
        self._config = config
        self._reports = reports
        self._records = records
        self._adopted = adopted  # an engine an earlier agent left serving this replica
        self._gone = gone  # its engine exited while no agent watched it
        self._engine: EngineProcess | None = None
        self._log_path = config.log_dir / f"{self._id}.log"
        # Set by the supervisor before it cancels the run: how long in-flight requests may take.
        self.stop_grace_s = 30.0
        self.serving: ServingEngine | None = None  # while its engine is ready, for load reports

    async def run(self) -> None:
        """Serve the replica until cancelled; then stop the engine and report it stopped."""
        try:
            runtime = ENGINES.get(self._assignment.engine)
            try:
                if runtime is None:
                    raise CannotRun(f"unknown engine {self._assignment.engine!r}")
                await self._keep_serving(runtime)
            except CannotRun as e:
                self._report(ReplicaStatus.FAILED, reason=str(e))
            await asyncio.get_running_loop().create_future()  # until unassigned
        except asyncio.CancelledError:
            await self._stop_engine(self.stop_grace_s)
            self._report(ReplicaStatus.STOPPED)
            log.info("replica stopped", replica=self._id)
            raise

    async def _keep_serving(self, runtime: EngineRuntime) -> None:
        """Serve; after each failure report it, wait out the backoff, and start again."""
        restarts = Restarts(first_s=self._config.restart_first_s)
        failure: Failure | None = None
        if self._adopted is not None:
            record = self._adopted.record
            self._config.store.touch(record.model_source)  # in use: last to be evicted
            failure = await self._serve(runtime, self._adopted.process, record.port)
        elif self._gone:
            why = "engine exited while no agent watched it"
            failure = Failure(_with_tail(why, self._log_path), 0.0)
        while True:
            if failure is not None:
                delay = restarts.next_delay(failure.served_s)
                reason = f"restart {restarts.count} in {delay:.1f}s: {failure.reason}"
                self._report(ReplicaStatus.FAILED, reason=reason)
                await asyncio.sleep(delay)
            failure = await self._start(runtime)

    async def _start(self, runtime: EngineRuntime) -> Failure:
        """Fetch the model, launch the engine and serve until it fails."""
        spec = self._assignment.model
        self._report(ReplicaStatus.STARTING, reason=f"fetching {spec.source}")
        progress = FetchProgress(
            spec.source, lambda reason: self._report(ReplicaStatus.STARTING, reason=reason)
        )
        try:
            model_format = FORMATS.get(spec.format)
            model_path = await self._config.store.fetch(
                spec.source,
                size_bytes=spec.size_bytes,
                sha256=spec.sha256,
                progress=progress,
                files=model_format.files if model_format is not None else (),
            )
        except StoreError as e:
            return Failure(f"model not available: {e}", 0.0)
        except ValueError as e:  # a source no node can fetch
            raise CannotRun(f"model not available: {e}") from e
        port = free_port(self._config.bind_host)
        try:
            launch = runtime.launch(self._assignment, str(model_path), self._config.bind_host, port)
        except ValueError as e:  # the spec does not fit this engine (e.g. GPUs vs tensor parallel)
            raise CannotRun(str(e)) from e
        self._report(ReplicaStatus.STARTING)
        engine = await self._launch(runtime, launch, port)
        timeout_s = self._config.ready_timeout_s
        if not await _ready(engine, port, runtime.health_path, timeout_s):
            exited = not engine.running()
            await self._stop_engine(STOP_FAILED_S)
            why = _exited(engine) if exited else f"engine not healthy within {timeout_s:.0f}s"
            return Failure(_with_tail(why, self._log_path), 0.0)
        self._config.store.touch(spec.source)  # in use: last to be evicted
        return await self._serve(runtime, engine, port)

    async def _launch(self, runtime: EngineRuntime, launch: Launch, port: int) -> EngineProcess:
        await self._stop_leftover()
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        mark = {ENGINE_MARK: str(self._records.path(self._id))}
        engine = await EngineProcess.spawn(
            launch.argv, {**os.environ, **launch.env, **mark}, self._log_path
        )
        self._engine = engine
        self._records.save(
            EngineRecord(
                replica_id=self._id,
                pid=engine.pid,
                create_time=engine.create_time,
                port=port,
                endpoint=self._endpoint(port),
                engine=runtime.name,
                model_source=self._assignment.model.source,
                argv=launch.argv,
                log_path=self._log_path,
            )
        )
        log.info("engine started", replica=self._id, engine=runtime.name, port=port, pid=engine.pid)
        return engine

    async def _stop_leftover(self) -> None:
        """Never two engines for one replica: stop one a record still names."""
        record = self._records.get(self._id)
        if record is None:
            return
        leftover = EngineProcess.find(record.pid, record.create_time)
        if leftover is not None:
            log.warning("stopping a leftover engine", replica=self._id, pid=leftover.pid)
            await leftover.stop(STOP_FAILED_S)
        self._records.remove(self._id)

    async def _serve(self, runtime: EngineRuntime, engine: EngineProcess, port: int) -> Failure:
        """Report the engine ready and watch it until it exits or stops answering."""
        self._engine = engine
        endpoint = self._endpoint(port)
        self._report(ReplicaStatus.READY, endpoint=endpoint)
        log.info("engine ready", replica=self._id, endpoint=endpoint, pid=engine.pid)
        self.serving = ServingEngine(self._id, runtime.name, port)
        since = time.monotonic()
        try:
            why = await _watch(engine, port, runtime.health_path)
        finally:
            self.serving = None
        served_s = time.monotonic() - since
        await self._stop_engine(STOP_FAILED_S)
        return Failure(_with_tail(why, self._log_path), served_s)

    async def _stop_engine(self, grace_s: float) -> None:
        if self._engine is not None:
            await self._engine.stop(grace_s)
            self._engine = None
            self._records.remove(self._id)

    def _endpoint(self, port: int) -> str:
        return f"http://{self._config.bind_host}:{port}"

    def _report(
        self, status: ReplicaStatus, *, endpoint: str | None = None, reason: str | None = None
    ) -> None:
        if status == ReplicaStatus.FAILED:
            log.warning("replica failed", replica=self._id, reason=reason)
        self._reports.report(
            self._id, ReplicaReport(status=status, endpoint=endpoint, reason=reason)
        )


async def _ready(engine: EngineProcess, port: int, path: str, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await http_ok("127.0.0.1", port, path):
            return True
        if await engine.exits_within(0.25):
            return False
    return False


async def _watch(engine: EngineProcess, port: int, path: str) -> str:
    """Wait until the engine exits or misses `PROBE_MISSES` probes in a row; which it was."""
    misses = 0
    while misses < PROBE_MISSES:
        if await engine.exits_within(PROBE_EVERY_S):
            return _exited(engine)
        healthy = await http_ok("127.0.0.1", port, path, PROBE_WITHIN_S)
        misses = 0 if healthy else misses + 1
    return f"engine missed {PROBE_MISSES} health probes in a row"


def _exited(engine: EngineProcess) -> str:
    code = engine.returncode
    return "engine exited" if code is None else f"engine exited with code {code}"


def _with_tail(reason: str, log_path: Path) -> str:
    try:
        with log_path.open(errors="replace") as f:
            tail = "".join(deque(f, maxlen=LOG_TAIL_LINES)).strip()
    except OSError:
        return reason
    return f"{reason}; last log lines:\n{tail}" if tail else reason
