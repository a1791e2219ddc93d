"""The agent's supervisor in-process, with real processes: what it finds of an earlier agent's
engines when it starts, and the reports it makes while a replica's model downloads."""

import asyncio
import functools
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psutil
import pytest

from hashgrid.agent import replica
from hashgrid.agent.engine_records import ENGINE_MARK, EngineRecord, EngineRecords
from hashgrid.agent.engines import ENGINES
from hashgrid.agent.recovery import recover
from hashgrid.agent.replica import EngineConfig
from hashgrid.agent.store import ModelStore
from hashgrid.agent.supervisor import Supervisor
from hashgrid.common.net import free_port
from hashgrid.contracts.agent import Assignment, ModelSpec, ReplicaReport
from hashgrid.contracts.states import ReplicaStatus

from support.live import wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def records(tmp_path: Path) -> EngineRecords:
    return EngineRecords(tmp_path / "engines")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts, each in its own session as engines are; killed at the end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def start(
    processes: list[subprocess.Popen[bytes]], argv: list[str], env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        argv,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    processes.append(proc)
    return proc


def record(replica_id: str, pid: int, create_time: float, port: int = 1) -> EngineRecord:
    return EngineRecord(
        replica_id=replica_id,
        pid=pid,
        create_time=create_time,
        port=port,
        endpoint=f"http://127.0.0.1:{port}",
        engine="llamacpp",
        model_source="/models/tiny.gguf",
        argv=["engine"],
        log_path=Path("/nonexistent.log"),
    )


def started_at(proc: subprocess.Popen[bytes]) -> float:
    return psutil.Process(proc.pid).create_time()


def sleeper(processes: list[subprocess.Popen[bytes]], **env: str) -> subprocess.Popen[bytes]:
    return start(processes, ["sleep", "120"], env)


async def test_a_recycled_pid_is_neither_adopted_nor_touched(
    records: EngineRecords, processes: list[subprocess.Popen[bytes]]
) -> None:
    """A record's pid now names another process (started at another time): that process is
    someone else's, so it is left alone, and the record's engine counts as gone."""
    stranger = sleeper(processes)
    records.save(record("r1", stranger.pid, started_at(stranger) - 3600))
    found = await recover(records, ENGINES)
    assert found.adopted == {}
    assert found.gone == {"r1"}
    assert records.get("r1") is None
    assert stranger.poll() is None


async def test_a_record_whose_engine_exited_is_deleted(
    records: EngineRecords, processes: list[subprocess.Popen[bytes]]
) -> None:
    ended = start(processes, ["true"])
    ended.wait(10)
    records.save(record("r1", ended.pid, 0.0))
    found = await recover(records, ENGINES)
    assert (found.adopted, found.gone) == ({}, {"r1"})
    assert records.all() == []


async def test_a_healthy_engine_is_adopted_and_an_unhealthy_one_stopped(
    records: EngineRecords, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    # Something that answers llama.cpp's health path as the engine does.
    site = tmp_path / "site"
    site.mkdir()
    (site / "openapi.json").write_text("{}")
    port = free_port()
    healthy = start(processes, [sys.executable, "-m", "http.server", str(port), "-d", str(site)])
    wait_until(lambda: _answers(port), 30, "the healthy engine to listen")
    mute = sleeper(processes)
    records.save(record("good", healthy.pid, started_at(healthy), port))
    records.save(record("mute", mute.pid, started_at(mute), free_port()))

    found = await recover(records, ENGINES)

    assert set(found.adopted) == {"good"}
    assert found.adopted["good"].process.pid == healthy.pid
    assert found.gone == set()
    assert healthy.poll() is None
    assert mute.wait(10) == -15  # SIGTERM
    assert [r.replica_id for r in records.all()] == ["good"]


async def test_an_engine_of_this_home_that_no_record_names_is_stopped(
    records: EngineRecords, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """The agent died after starting it and before recording it: it is found by its mark."""
    stray = sleeper(processes, **{ENGINE_MARK: str(records.path("r1"))})
    elsewhere = sleeper(processes, **{ENGINE_MARK: str(tmp_path / "other" / "engines" / "r1.json")})
    wait_until(lambda: ENGINE_MARK in psutil.Process(stray.pid).environ(), 10, "the exec")
    found = await recover(records, ENGINES)
    assert (found.adopted, found.gone) == ({}, set())
    assert stray.wait(10) == -15
    assert elsewhere.poll() is None  # another agent home's engine


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2).is_success
    except httpx.HTTPError:
        return False


# --- a replica's life in the supervisor ----------------------------------------------------


class Reports:
    """What the supervisor reports, in order (the control plane's side is tested elsewhere)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, ReplicaReport]] = []

    def report(self, replica_id: str, report: ReplicaReport) -> None:
        self.sent.append((replica_id, report))

    def statuses(self) -> list[ReplicaStatus]:
        return [r.status for _, r in self.sent]

    async def until(self, status: ReplicaStatus, count: int = 1, within_s: float = 60.0) -> None:
        """Wait until `status` was reported `count` times."""
        deadline = asyncio.get_running_loop().time() + within_s
        while self.statuses().count(status) < count:
            assert asyncio.get_running_loop().time() < deadline, f"no {status}: {self.sent}"
            await asyncio.sleep(0.1)


def engine_config(tmp_path: Path) -> EngineConfig:
    return EngineConfig(
        log_dir=tmp_path / "logs",
        records_dir=tmp_path / "engines",
        ready_timeout_s=60.0,
        store=ModelStore(tmp_path / "store", 2**30),
        restart_first_s=0.2,
    )


def tiny_assignment(spec: ModelSpec) -> Assignment:
    return Assignment(replica_id="r1", deployment="tiny", engine="llamacpp", model=spec)


@pytest.fixture
def served(tiny_model: Path) -> Iterator[ModelSpec]:
    """The tiny model, served over HTTP from loopback."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tiny_model.parent))
    files = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=files.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{files.server_address[1]}/{tiny_model.name}"
    yield ModelSpec(name="tiny", source=url, size_bytes=tiny_model.stat().st_size)
    files.shutdown()


async def test_a_download_is_reported_with_its_progress_then_the_engine_serves(
    tmp_path: Path, served: ModelSpec
) -> None:
    reports = Reports()
    config = engine_config(tmp_path)
    supervisor = Supervisor(config, reports)
    await supervisor.sync([tiny_assignment(served)])
    try:
        await reports.until(ReplicaStatus.READY)
        reasons = [r.reason or "" for _, r in reports.sent if r.status == ReplicaStatus.STARTING]
        mib = (served.size_bytes or 0) / 2**20
        pattern = rf"fetching {re.escape(served.source)}: \d+% \(\d+\.\d of {mib:.1f} MiB\)"
        assert any(re.fullmatch(pattern, reason) for reason in reasons), reasons
        assert EngineRecords(config.records_dir).get("r1") is not None
    finally:
        await supervisor.stop_all()
    assert reports.statuses()[-1] == ReplicaStatus.STOPPED
    assert EngineRecords(config.records_dir).all() == []


async def test_an_engine_that_stops_answering_is_replaced(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frozen engine (SIGSTOP) still runs but misses its probes: it is killed and restarted."""
    monkeypatch.setattr(replica, "PROBE_EVERY_S", 0.2)
    monkeypatch.setattr(replica, "PROBE_WITHIN_S", 2.0)
    monkeypatch.setattr(replica, "STOP_FAILED_S", 0.5)
    reports = Reports()
    config = engine_config(tmp_path)
    supervisor = Supervisor(config, reports)
    spec = ModelSpec(name="tiny", source=str(tiny_model))
    await supervisor.sync([tiny_assignment(spec)])
    try:
        await reports.until(ReplicaStatus.READY)
        frozen = EngineRecords(config.records_dir).get("r1")
        assert frozen is not None
        os.kill(frozen.pid, signal.SIGSTOP)
        await reports.until(ReplicaStatus.FAILED)
        [failure] = [r for _, r in reports.sent if r.status == ReplicaStatus.FAILED]
        assert failure.reason is not None
        assert failure.reason.startswith("restart 1 in ")
        assert "engine missed 3 health probes in a row; last log lines:" in failure.reason
        await reports.until(ReplicaStatus.READY, count=2)
        restarted = EngineRecords(config.records_dir).get("r1")
        assert restarted is not None
        assert restarted.pid != frozen.pid
        assert not psutil.pid_exists(frozen.pid)  # killed, and reaped: it was our child
    finally:
        await supervisor.stop_all()
