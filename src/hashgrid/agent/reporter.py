"""Replica reports that survive a control plane that is away: the latest per replica, resent
until it is taken or refused."""

import asyncio

import httpx
import structlog

from hashgrid.agent.control_plane import ControlPlane, Rejected
from hashgrid.common.backoff import Backoff
from hashgrid.contracts.agent import ReplicaReport

log = structlog.get_logger("hashgrid.agent.reporter")


class Reporter:
    def __init__(self, control_plane: ControlPlane) -> None:
        self._control_plane = control_plane
        self._pending: dict[str, ReplicaReport] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def report(self, replica_id: str, report: ReplicaReport) -> None:
        """Queue `report`; it replaces any unsent report for the same replica."""
        self._pending[replica_id] = report
        self._idle.clear()
        self._wake.set()

    async def run(self) -> None:
        backoff = Backoff()
        while True:
            await self._wake.wait()
            self._wake.clear()
            for replica_id, report in list(self._pending.items()):
                try:
                    await self._control_plane.report(replica_id, report)
                except Rejected as e:
                    log.warning(
                        "report refused", replica=replica_id, status=report.status, why=str(e)
                    )
                except (httpx.HTTPError, OSError) as e:
                    delay = backoff.next_delay()
                    log.warning(
                        "control plane unreachable; will resend", error=str(e), retry_s=delay
                    )
                    await asyncio.sleep(delay)
                    self._wake.set()
                    break
                backoff.reset()
                if self._pending.get(replica_id) is report:
                    del self._pending[replica_id]
            if not self._pending:
                self._idle.set()

    async def flush(self, within_s: float) -> None:
        """Wait up to `within_s` for every queued report to be sent."""
        try:
            await asyncio.wait_for(self._idle.wait(), within_s)
        except TimeoutError:
            log.warning("reports left unsent at shutdown", count=len(self._pending))
