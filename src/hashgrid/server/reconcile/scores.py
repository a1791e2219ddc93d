"""Reliability scores: a pass every `interval_s` scores each node and site
(`reliability/service.py`); when a score moved, the revision is bumped so gateways weigh
replicas anew and placement sees it. The runner also calls after every change: those calls
return at once until the interval has passed, since a pass reads a day of usage records."""

import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hashgrid.server.changes import Changes
from hashgrid.server.reliability import service


class ScoreReconciler:
    name = "scores"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        changes: Changes,
        interval_s: float,
        window_s: float,
    ) -> None:
        self._sessions = sessions
        self._changes = changes
        self._interval_s = interval_s
        self._window_s = window_s
        self._last: float | None = None

    async def reconcile(self) -> float | None:
        now = time.monotonic()
        if self._last is not None and now - self._last < self._interval_s:
            return self._interval_s - (now - self._last)
        self._last = now
        async with self._sessions() as session:
            moved = await service.compute_scores(session, self._window_s)
        if moved:
            await self._changes.bump()
        return None
