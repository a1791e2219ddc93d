"""A revision number that grows whenever something a watcher cares about changes.

Long polls (agents' assignments, gateways' view) wait here for a revision newer than theirs.
The counter starts from the clock in milliseconds, so it keeps growing across server restarts
and a watcher holding a revision from before a restart is never left waiting.
"""

import asyncio
import contextlib
import time


class Changes:
    def __init__(self) -> None:
        self._revision = time.time_ns() // 1_000_000
        self._changed = asyncio.Condition()

    @property
    def revision(self) -> int:
        return self._revision

    async def bump(self) -> int:
        """Record a change and wake every watcher."""
        async with self._changed:
            self._revision += 1
            self._changed.notify_all()
            return self._revision

    async def wait_newer(self, revision: int, within_s: float) -> int:
        """Wait until the revision exceeds `revision`, or `within_s` passes; return the current."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._revision > revision), within_s
                )
            return self._revision
