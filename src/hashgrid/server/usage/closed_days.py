"""The sums of closed days, kept so that a summary over many days sums only the days still open.

A UTC day that has ended gets no new requests, so its sums per group hold until a record of it
arrives late (a gateway's spool drains after an outage): storing such a record calls `touched`,
which drops the day's sums and moves its generation on. A summary reads the generation before it
sums a day and keeps the sums only if the generation has not moved meanwhile, so a batch stored
while it summed cannot leave stale sums behind. Sums are kept per summary shape (scope, groups,
filters) and day, at most `MOST` of them, the oldest dropped first. They live in this process:
several servers on one database each keep their own, and one server does not hear of records
another stored (see docs/api.md).
"""

from collections.abc import Hashable, Iterable
from datetime import date
from typing import Any

Sums = list[dict[str, Any]]  # one day's rows: the groups' values and the sums


class ClosedDays:
    MOST = 100_000

    def __init__(self) -> None:
        self._sums: dict[tuple[Hashable, date], Sums] = {}
        self._generations: dict[date, int] = {}

    def generation(self, day: date) -> int:
        return self._generations.get(day, 0)

    def get(self, shape: Hashable, day: date) -> Sums | None:
        return self._sums.get((shape, day))

    def put(self, shape: Hashable, day: date, sums: Sums, generation: int) -> None:
        """Keep `day`'s sums for `shape`, read when its generation was `generation`."""
        if generation != self.generation(day):
            return
        if len(self._sums) >= self.MOST:
            del self._sums[next(iter(self._sums))]
        self._sums[(shape, day)] = sums

    def touched(self, days: Iterable[date]) -> None:
        """Records of `days` were stored: their sums no longer hold."""
        days = set(days)
        if not days:
            return
        for day in days:
            self._generations[day] = self.generation(day) + 1
        self._sums = {k: v for k, v in self._sums.items() if k[1] not in days}

    def __len__(self) -> int:
        return len(self._sums)
