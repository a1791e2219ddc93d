"""What an agent finds when it starts: the engines an earlier agent on this node left running
(it crashed, was killed, or was restarted for an upgrade).

For each record: an engine still running (same pid and start time) that answers its health
probe is adopted; one running but not answering is stopped; a record whose engine is gone is
deleted and noted, so its replica's failure can be reported. An engine marked as this home's
that no record names (the agent died between starting it and writing the record) is stopped.
Whether an adopted engine is still wanted is for the first assignments answer to say.
"""

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import psutil
import structlog

from hashgrid.agent.engine_process import EngineProcess
from hashgrid.agent.engine_records import ENGINE_MARK, EngineRecord, EngineRecords
from hashgrid.agent.engines import EngineRuntime
from hashgrid.agent.probe import http_ok

log = structlog.get_logger("hashgrid.agent.recovery")

PROBE_ATTEMPTS = 3
PROBE_WITHIN_S = 5.0
STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class Adopted:
    record: EngineRecord
    process: EngineProcess


@dataclass
class Found:
    adopted: dict[str, Adopted] = field(default_factory=dict)
    # Replicas whose engine exited while no agent watched it.
    gone: set[str] = field(default_factory=set)


async def recover(records: EngineRecords, runtimes: Mapping[str, EngineRuntime]) -> Found:
    """Adopt the healthy engines `records` name, stop the others, and drop stale records."""
    found = Found()
    await asyncio.gather(*(_recover_one(r, records, runtimes, found) for r in records.all()))
    await _stop_unrecorded(records, {a.process.pid for a in found.adopted.values()})
    return found


async def _recover_one(
    record: EngineRecord,
    records: EngineRecords,
    runtimes: Mapping[str, EngineRuntime],
    found: Found,
) -> None:
    replica = record.replica_id
    process = EngineProcess.find(record.pid, record.create_time)
    if process is None:
        log.warning("engine exited while no agent watched it", replica=replica, pid=record.pid)
        records.remove(replica)
        found.gone.add(replica)
        return
    runtime = runtimes.get(record.engine)
    if runtime is not None and await _answers(record.port, runtime.health_path):
        log.info("engine adopted", replica=replica, pid=record.pid, endpoint=record.endpoint)
        found.adopted[replica] = Adopted(record, process)
        return
    log.warning("stopping an engine left unhealthy", replica=replica, pid=record.pid)
    await process.stop(STOP_GRACE_S)
    records.remove(replica)


async def _answers(port: int, path: str) -> bool:
    for attempt in range(PROBE_ATTEMPTS):
        if attempt:
            await asyncio.sleep(1.0)
        if await http_ok("127.0.0.1", port, path, PROBE_WITHIN_S):
            return True
    return False


async def _stop_unrecorded(records: EngineRecords, adopted: set[int]) -> None:
    """Stop every live process marked as an engine of this home, outside the adopted engines'
    process groups (each engine leads its own)."""
    strays = []
    for proc in psutil.process_iter():
        try:
            mark = proc.environ().get(ENGINE_MARK)
            if mark is None or not mark.startswith(f"{records.root}{os.sep}"):
                continue
            if os.getpgid(proc.pid) in adopted or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            strays.append(EngineProcess(proc.pid, proc.create_time()))
        except (psutil.Error, OSError):
            continue  # gone meanwhile, or not ours to read
    for stray in strays:
        log.warning("stopping an engine no record names", pid=stray.pid)
    await asyncio.gather(*(stray.stop(STOP_GRACE_S) for stray in strays))
