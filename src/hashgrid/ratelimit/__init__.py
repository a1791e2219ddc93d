"""Rate limits and budgets as pure arithmetic: the decision both of the gateway's stores make.

A limit of L units a minute is a GCRA bucket: a token bucket of capacity L that refills
continuously at L per minute, kept as one number, its theoretical arrival time (TAT, in ms).
The bucket's *level* is how far the TAT lies ahead of now, i.e. the time it takes to drain to
empty; each unit taken adds `period / L` to it, and a take is allowed while the level stays
within the period. So a fresh key may burst its whole minute's limit at once, then gets one unit
back every `period / L`. The same numbers give OpenAI's headers: remaining units
`floor((period - level) / (period / L))`, and the time until the bucket is back to its initial
state, the level itself.

A request takes from several buckets at once (the key's and its customer's, requests and
tokens) and is allowed only if every bucket has room; if one refuses, none is charged. A budget
that is spent refuses the request before any bucket is charged. `gateway/redis_limits.py`
holds the same decision in Lua; the unit tests run one table of cases through both.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PERIOD_MS = 60_000.0
# Float slack: L takes of `period / L` may sum to a hair over `period`.
EPSILON_MS = 1e-6

Clock = Callable[[], float]  # the time in milliseconds (the wall clock in the gateway)


@dataclass(frozen=True, slots=True)
class Charge:
    """Take `cost` units from the bucket `bucket`, which allows `limit` units a period."""

    bucket: str
    limit: int
    cost: int


@dataclass(frozen=True, slots=True)
class Budget:
    """A spend limit: refuse while `spent_usd` (what the caller knows was spent) reaches it."""

    counter: str
    limit_usd: float
    spent_usd: float


@dataclass(slots=True)
class Verdict:
    allowed: bool
    # Each charge's bucket level (ms) after the decision: raised when allowed, as it was if not.
    levels: tuple[float, ...]
    refused: int = -1  # index of the first charge without room; -1 when none
    exhausted: int = -1  # index of the first spent budget; -1 when none
    retry_after_ms: float = 0.0  # when every refusing bucket will have room (0: allowed)
    never: bool = False  # a charge exceeds its bucket's whole limit: waiting cannot help
    spent_usd: float = 0.0  # the exhausted budget's spend


def level_of(tat_ms: float, now_ms: float) -> float:
    return tat_ms - now_ms if tat_ms > now_ms else 0.0


def decide(
    charges: Sequence[Charge],
    tats: Sequence[float],
    budgets: Sequence[Budget],
    now_ms: float,
    period_ms: float = PERIOD_MS,
) -> Verdict:
    """Whether a request may take `charges` from buckets at `tats`, given `budgets`."""
    levels = tuple([t - now_ms if t > now_ms else 0.0 for t in tats])
    for j, b in enumerate(budgets):
        if b.spent_usd >= b.limit_usd:
            return Verdict(False, levels, exhausted=j, never=True, spent_usd=b.spent_usd)
    refused = -1
    retry = 0.0
    never = False
    after = []
    for i, c in enumerate(charges):
        need = c.cost * period_ms / c.limit
        level = levels[i] + need
        if level > period_ms + EPSILON_MS:
            refused = i if refused < 0 else refused
            retry = max(retry, level - period_ms)
            never = never or need > period_ms + EPSILON_MS
        after.append(level)
    if refused >= 0:
        return Verdict(False, levels, refused=refused, retry_after_ms=retry, never=never)
    return Verdict(True, tuple(after))


def adjusted(tat_ms: float, now_ms: float, limit: int, delta: int, period_ms: float) -> float:
    """A bucket's TAT after `delta` more units (fewer when negative) than it was charged."""
    tat = max(tat_ms, now_ms) + delta * period_ms / limit
    return tat if tat > now_ms else now_ms


def remaining(limit: int, level_ms: float, period_ms: float = PERIOD_MS) -> int:
    """Units that could be taken now from a bucket at `level_ms`."""
    left = (period_ms - level_ms) * limit / period_ms + 1e-9
    return math.floor(left) if left > 0 else 0


class LocalBuckets:
    """Buckets in this process's memory: microseconds per decision, shared with no one.

    Budgets are checked against the spend the caller knows; spend is counted by the caller
    (`gateway/spend.py`), so `settle` here only corrects token charges.
    """

    SWEEP_EVERY = 10_000  # takes between sweeps of drained buckets

    def __init__(self, clock: Clock, period_ms: float = PERIOD_MS) -> None:
        self._clock = clock
        self._period_ms = period_ms
        self._tats: dict[str, float] = {}
        self._takes = 0

    def take(self, charges: Sequence[Charge], budgets: Sequence[Budget]) -> Verdict:
        now = self._clock()
        tats = self._tats
        current = [tats.get(c.bucket, 0.0) for c in charges]
        verdict = decide(charges, current, budgets, now, self._period_ms)
        if verdict.allowed:
            for c, level in zip(charges, verdict.levels, strict=True):
                tats[c.bucket] = now + level
        self._takes += 1
        if self._takes % self.SWEEP_EVERY == 0:
            self._tats = {b: t for b, t in tats.items() if t > now}
        return verdict

    def settle(
        self, corrections: Sequence[tuple[Charge, int]], spends: Sequence[tuple[str, float]] = ()
    ) -> None:
        """Correct each charge by `delta` units: what the request really used less its cost.
        (Spend needs no keeping here: the caller knows it; see `Budget.spent_usd`.)"""
        now = self._clock()
        for c, delta in corrections:
            if delta:
                tat = adjusted(self._tats.get(c.bucket, 0.0), now, c.limit, delta, self._period_ms)
                self._tats[c.bucket] = tat

    def level(self, bucket: str) -> float:
        """A bucket's level now (ms to drain)."""
        return level_of(self._tats.get(bucket, 0.0), self._clock())
