"""When to restart a failed process (an engine, a child of `hashgrid up`): soon at first, then
less and less often, so one that keeps failing neither spins nor waits long once it is fixed;
one that served for a while before failing starts the schedule over (systemd's
`Restart=on-failure` with a growing `RestartSec`)."""

import random
from dataclasses import dataclass, field

from hashgrid.common.backoff import Backoff


@dataclass
class Restarts:
    """One process's restarts: how many so far, and how long to wait before the next."""

    first_s: float = 1.0  # the first wait (drawn between half of it and all of it)
    cap_s: float = 60.0  # waits double up to this
    stable_s: float = 300.0  # one that served this long fails as if for the first time
    rng: random.Random = field(default_factory=random.Random)
    count: int = 0

    def __post_init__(self) -> None:
        self._backoff = Backoff(base=self.first_s, cap=self.cap_s, rng=self.rng)

    def next_delay(self, served_s: float) -> float:
        """Count a restart of a process that served `served_s` before it failed; the wait."""
        if served_s >= self.stable_s:
            self._backoff.reset()
        self.count += 1
        return self._backoff.next_delay()
