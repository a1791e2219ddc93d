"""Runs exactly the replicas the control plane assigns: starts the missing, stops the extra, and
takes over the engines an agent before it left running."""

import asyncio
from contextlib import suppress
from dataclasses import dataclass

import structlog

from hashgrid.agent.engine_records import EngineRecords
from hashgrid.agent.engines import ENGINES
from hashgrid.agent.loads import ServingEngine
from hashgrid.agent.recovery import Adopted, Found, recover
from hashgrid.agent.replica import EngineConfig, ReplicaRunner, Reports
from hashgrid.contracts.agent import Assignment, ReplicaReport
from hashgrid.contracts.states import ReplicaStatus

log = structlog.get_logger("hashgrid.agent.supervisor")


@dataclass(frozen=True)
class _Running:
    runner: ReplicaRunner
    task: asyncio.Task[None]


class Supervisor:
    def __init__(self, config: EngineConfig, reports: Reports) -> None:
        self._config = config
        self._reports = reports
        self._records = EngineRecords(config.records_dir)
        self._running: dict[str, _Running] = {}
        self._found = Found()  # what `recover` found, until the first sync settles it
        self._stopping = False
        self._stop_grace_s = 30.0  # set by the control plane with each assignment answer

    async def recover(self) -> None:
        """Before the first sync: adopt the healthy engines an earlier agent left, stop the rest."""
        self._found = await recover(self._records, ENGINES)

    def serving(self) -> list[ServingEngine]:
        """The engines ready and serving now: replica id, engine name, local port."""
        return [r.runner.serving for r in self._running.values() if r.runner.serving]

    async def sync(self, assignments: list[Assignment], stop_grace_s: float = 30.0) -> None:
        """Make the running set equal the assigned set; level-triggered, safe to repeat.

        An engine no longer assigned gets SIGTERM and `stop_grace_s` to finish what it serves.
        The first sync also settles what `recover` found: an adopted engine the answer does not
        assign (or assigns with another engine or model) is stopped, the rest keep serving.
        """
        if self._stopping:
            return
        self._stop_grace_s = stop_grace_s
        wanted = {a.replica_id: a for a in assignments}
        found, self._found = self._found, Found()
        adopted = list(found.adopted.values())
        keep = await asyncio.gather(*(self._settle(a, wanted) for a in adopted))
        kept = {a.record.replica_id: a for a, k in zip(adopted, keep, strict=True) if k}
        for replica_id in found.gone - set(wanted):
            self._report_stopped(replica_id)
        for replica_id in set(self._running) - set(wanted):
            await self._stop(replica_id)
        for replica_id, assignment in wanted.items():
            if replica_id in self._running or self._stopping:
                continue
            runner = ReplicaRunner(
                assignment,
                self._config,
                self._reports,
                self._records,
                adopted=kept.get(replica_id),
                gone=replica_id in found.gone,
            )
            task = asyncio.create_task(runner.run(), name=f"replica-{replica_id}")
            self._running[replica_id] = _Running(runner, task)

    async def stop_all(self) -> None:
        """Stop every engine, adopted ones included, and start none from now on."""
        self._stopping = True
        found, self._found = self._found, Found()
        await asyncio.gather(
            *(self._stop(r) for r in list(self._running)),
            *(self._stop_adopted(a, report=True) for a in found.adopted.values()),
        )

    async def _stop(self, replica_id: str) -> None:
        running = self._running.pop(replica_id, None)
        if running is not None:
            running.runner.stop_grace_s = self._stop_grace_s
            running.task.cancel()
            with suppress(asyncio.CancelledError):
                await running.task

    async def _settle(self, adopted: Adopted, wanted: dict[str, Assignment]) -> bool:
        """Keep an adopted engine if the first answer assigns it as it runs; else stop it."""
        assignment = wanted.get(adopted.record.replica_id)
        if assignment is None:
            await self._stop_adopted(adopted, report=True)
            return False
        if (adopted.record.engine, adopted.record.model_source) != (
            assignment.engine,
            assignment.model.source,
        ):
            await self._stop_adopted(adopted, report=False)  # its replica starts afresh
            return False
        return True

    async def _stop_adopted(self, adopted: Adopted, *, report: bool) -> None:
        replica_id = adopted.record.replica_id
        log.info("stopping an adopted engine", replica=replica_id, assigned=not report)
        await adopted.process.stop(self._stop_grace_s)
        self._records.remove(replica_id)
        if report:
            self._report_stopped(replica_id)

    def _report_stopped(self, replica_id: str) -> None:
        # A replica unassigned while no agent ran waits, `stopping`, to hear its engine is gone.
        self._reports.report(replica_id, ReplicaReport(status=ReplicaStatus.STOPPED))
