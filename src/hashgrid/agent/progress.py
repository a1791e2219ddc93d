"""A model download's progress as the reason of a `starting` report, at most one a second."""

import time
from collections.abc import Callable

MIB = 2**20


def fetch_reason(source: str, done: int, total: int | None) -> str:
    """`fetching SOURCE: 45% (13.1 of 29.0 MiB)`; only the MiB so far when the size is unknown."""
    if not total:
        return f"fetching {source}: {done / MIB:.1f} MiB"
    return f"fetching {source}: {100 * done // total}% ({done / MIB:.1f} of {total / MIB:.1f} MiB)"


class FetchProgress:
    """A `ModelStore.fetch` progress callback passing a reason to `say` every `every_s` at most."""

    def __init__(
        self,
        source: str,
        say: Callable[[str], None],
        every_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._say = say
        self._every_s = every_s
        self._clock = clock
        self._last: float | None = None

    def __call__(self, done: int, total: int | None) -> None:
        now = self._clock()
        if self._last is not None and now - self._last < self._every_s:
            return
        self._last = now
        self._say(fetch_reason(self._source, done, total))
