"""Replica reports that survive a control plane that is away: the latest per replica, resent
until it is taken or refused. A failure is never replaced unsent: the control plane hears of
every crash (with its log lines) even when the restart's reports follow before it is back."""

import asyncio

import structlog

from hashgrid.agent.control_plane import AWAY_RETRY_CAP_S, ControlPlane, Rejected, Unreachable
from hashgrid.common.backoff import Backoff
from hashgrid.common.waiting import sleep_unless
from hashgrid.contracts.agent import ReplicaReport
from hashgrid.contracts.states import ReplicaStatus

log = structlog.get_logger("hashgrid.agent.reporter")


class Reporter:
    def __init__(self, control_plane: ControlPlane) -> None:
        self._control_plane = control_plane
        # Per replica, in order: an unsent failure, if any, then the latest report.
        self._pending: dict[str, list[ReplicaReport]] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = asyncio.Event()

    def report(self, replica_id: str, report: ReplicaReport) -> None:
        """Queue `report`; it replaces the unsent reports for the same replica but a failure."""
        queued = self._pending.get(replica_id, [])
        failure = queued[:1] if queued and queued[0].status == ReplicaStatus.FAILED else []
        self._pending[replica_id] = [*failure, report]
        self._idle.clear()
        self._wake.set()

    async def run(self) -> None:
        """Send queued reports until `close` is called."""
        backoff = Backoff(cap=AWAY_RETRY_CAP_S)
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
        """Send the queued reports, each replica's in order; False when the control plane could
        not be reached (what is left stays queued)."""
        for replica_id in list(self._pending):
            while queued := self._pending.get(replica_id):
                if self._closed.is_set():
                    return True
                report = queued[0]
                try:
                    await self._control_plane.report(replica_id, report)
                except Rejected as e:
                    log.warning(
                        "report refused", replica=replica_id, status=report.status, why=str(e)
                    )
                except Unreachable as e:
                    log.warning("control plane unreachable; will resend", error=str(e))
                    return False
                self._taken(replica_id, report)
        return True

    def _taken(self, replica_id: str, report: ReplicaReport) -> None:
        """Unqueue `report` unless a newer report replaced it while it was on its way."""
        queued = self._pending.get(replica_id, [])
        if queued and queued[0] is report:
            del queued[0]
            if not queued:
                del self._pending[replica_id]

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
