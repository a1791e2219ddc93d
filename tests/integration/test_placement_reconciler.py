"""The placement reconciler reads the database only when its answer may have changed.

(That a failed replica keeps the passes coming, its retry window running out with the clock
rather than with a change, is in test_faults.py: a replica that stays failed is moved.)"""

from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hashgrid.server.changes import Changes
from hashgrid.server.db.engine import make_engine, make_sessionmaker
from hashgrid.server.db.migrate import upgrade
from hashgrid.server.reconcile.placement import PlacementReconciler


class CountingSessions:
    """The sessionmaker, counting the sessions each pass opens."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self.opened = 0

    def __call__(self) -> Any:
        self.opened += 1
        return self._sessions()


async def test_a_settled_pass_is_not_repeated_until_something_changes(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'db'}")
    try:
        await upgrade(engine)
        sessions = CountingSessions(make_sessionmaker(engine))
        changes = Changes()
        reconciler = PlacementReconciler(sessions, changes, retry_after_s=30)  # type: ignore[arg-type]

        await reconciler.reconcile()
        await reconciler.reconcile()
        assert sessions.opened == 1, "an empty plan at the same revision was read again"

        await changes.bump()
        await reconciler.reconcile()
        assert sessions.opened == 2
    finally:
        await engine.dispose()
