"""Replica reports that survive a control plane that is away: the latest per replica, resent
until it is taken or refused."""

import asyncio

import httpx
import structlog

from hashgrid.agent.control_plane import ControlPlane, Rejected
from hashgrid.common.backoff import Backoff
from hashgrid.common.waiting import sleep_unless
from hashgrid.contracts.agent import ReplicaReport

log = structlog.get_logger("hashgrid.agent.reporter")


class Reporter:
    def __init__(self, control_plane: ControlPlane) -> None:
        self._control_plane = control_plane
        self._pending: dict[str, ReplicaReport] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = asyncio.Event()

    def report(self, replica_id: str, report: ReplicaReport) -> None:
        """Queue `report`; it replaces any unsent report for the same replica."""
        self._pending[replica_id] = report
        self._idle.clear()
        self._wake.set()

    async def run(self) -> None:
        """Send queued reports until `close` is called."""
        backoff = Backoff()
        while not self._closed.is_set():
            await self._wake.wait()
            self._wake.clear()
            if await self._send_pending():
                backoff.reset()
            else:
                self._wake.set()
                await sleep_unless(self._closed, backoff.next_delay())
            if not self._pending:
                self._idle.set()

    async def _send_pending(self) -> bool:
        """Try each queued report once; False when the control plane could not be reached."""
        for replica_id, report in list(self._pending.items()):
            if self._closed.is_set():
                return True
            try:
                await self._control_plane.report(replica_id, report)
            except Rejected as e:
                log.warning("report refused", replica=replica_id, status=report.status, why=str(e))
            except (httpx.HTTPError, OSError) as e:
                log.warning("control plane unreachable; will resend", error=str(e))
                return False
            if self._pending.get(replica_id) is report:
                del self._pending[replica_id]
        return True

    def close(self) -> None:
        """Make `run` return after the call in flight, if any."""
        self._closed.set()
        self._wake.set()

    async def flush(self, within_s: float) -> None:
        """Wait up to `within_s` for every queued report to be sent."""
        try:
            await asyncio.wait_for(self._idle.wait(), within_s)
        except TimeoutError:
            log.warning("reports left unsent at shutdown", count=len(self._pending))
