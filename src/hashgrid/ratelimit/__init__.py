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
tokens) and is allowed only if every bucket has room; if one refuses, none is charged.

Budgets are hard, in integer micro-dollars: a request is admitted only if its worst-case cost
fits what is left, `spent + reserved + cost <= limit` (and never once `spent` reaches the
limit, so a budget of 0 refuses everything). Admitting it *reserves* its worst case until it is
settled: the reservation is released and the actual cost is spent. So as long as no request
costs more than its worst case, spend never exceeds a budget, however many run at once. A
reservation carries a deadline (`hold_ms`): one whose request is never settled (its gateway
died) lapses then, and stops holding the budget. A budget that refuses refuses before any
bucket is charged. `gateway/redis_limits.py` holds the same decision in Lua; the unit tests run
one table of cases through both.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PERIOD_MS = 60_000.0
# Float slack: L takes of `period / L` may sum to a hair over `period`.
EPSILON_MS = 1e-6
# How long a budget reservation holds at most: longer than any request is answered, short
# enough that a dead gateway's reservations do not hold a budget for long.
HOLD_MS = 900_000.0

Clock = Callable[[], float]  # the time in milliseconds (the wall clock in the gateway)


@dataclass(frozen=True, slots=True)
class Charge:
    """Take `cost` units from the bucket `bucket`, which allows `limit` units a period."""

    bucket: str
    limit: int
    cost: int


@dataclass(frozen=True, slots=True)
class Budget:
    """A spend limit in micro-dollars: `spent` is what the caller knows was spent this month
    (its counter is `counter`), `cost` the request's worst case, reserved when admitted."""

    counter: str
    limit: int
    spent: int
    cost: int


@dataclass(frozen=True, slots=True)
class Spend:
    """A settled request's spend against a budget: its reservation `hold` (the request's id)
    is released and `actual` micro-dollars are spent."""

    budget: Budget
    hold: str
    actual: int


@dataclass(slots=True)
class Verdict:
    allowed: bool
    # Each charge's bucket level (ms) after the decision: raised when allowed, as it was if not.
    levels: tuple[float, ...]
    refused: int = -1  # index of the first charge without room; -1 when none
    exhausted: int = -1  # index of the first budget the request does not fit; -1 when none
    retry_after_ms: float = 0.0  # when every refusing bucket will have room (0: allowed)
    never: bool = False  # waiting cannot help: a charge above a whole limit, or a budget
    spent: int = 0  # the refusing budget's spend (micro-dollars), as the store saw it
    reserved: int = 0  # and its reservations in flight


def level_of(tat_ms: float, now_ms: float) -> float:
    return tat_ms - now_ms if tat_ms > now_ms else 0.0


def fits(limit: int, spent: int, reserved: int, cost: int) -> bool:
    """Whether a request of worst case `cost` fits a budget: the one rule of admission."""
    return spent < limit and spent + reserved + cost <= limit


def decide(
    charges: Sequence[Charge],
    tats: Sequence[float],
    budgets: Sequence[Budget],
    now_ms: float,
    period_ms: float = PERIOD_MS,
    reserved: Sequence[int] = (),
) -> Verdict:
    """Whether a request may take `charges` from buckets at `tats`, given `budgets` with
    `reserved` micro-dollars of each held by requests in flight."""
    levels = tuple([t - now_ms if t > now_ms else 0.0 for t in tats])
    for j, b in enumerate(budgets):
        held = reserved[j] if reserved else 0
        if not fits(b.limit, b.spent, held, b.cost):
            return Verdict(False, levels, exhausted=j, never=True, spent=b.spent, reserved=held)
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


class Holds:
    """One budget's reservations in flight: micro-dollars and deadline by request, and their
    total. Deadlines are `hold_ms` after each take, so insertion order is deadline order."""

    __slots__ = ("by_request", "total")

    def __init__(self) -> None:
        self.by_request: dict[str, tuple[int, float]] = {}
        self.total = 0

    def lapse(self, now_ms: float) -> None:
        """Drop the reservations whose deadline has passed."""
        lapsed = []
        for hold, (_, deadline) in self.by_request.items():
            if deadline > now_ms:
                break
            lapsed.append(hold)
        for hold in lapsed:
            self.total -= self.by_request.pop(hold)[0]

    def release(self, hold: str) -> None:
        found = self.by_request.pop(hold, None)
        if found is not None:
            self.total -= found[0]


class LocalBuckets:
    """Buckets in this process's memory: microseconds per decision, shared with no one.

    Budgets are checked against the spend the caller knows and the reservations held here;
    spend is counted by the caller (`gateway/spend.py`), so `settle` here corrects token
    charges and releases reservations.
    """

    SWEEP_EVERY = 10_000  # takes between sweeps of drained buckets

    def __init__(
        self, clock: Clock, period_ms: float = PERIOD_MS, hold_ms: float = HOLD_MS
    ) -> None:
        self._clock = clock
        self._period_ms = period_ms
        self._hold_ms = hold_ms
        self._tats: dict[str, float] = {}
        self._holds: dict[str, Holds] = {}
        self._takes = 0

    def take(
        self, charges: Sequence[Charge], budgets: Sequence[Budget] = (), hold: str = ""
    ) -> Verdict:
        """Decide; when allowed, charge the buckets and reserve each budget's cost as `hold`."""
        now = self._clock()
        tats = self._tats
        current = [tats.get(c.bucket, 0.0) for c in charges]
        reserved: list[int] = []
        if budgets:
            for b in budgets:
                holds = self._holds.get(b.counter)
                if holds is not None:
                    holds.lapse(now)
                reserved.append(holds.total if holds is not None else 0)
        verdict = decide(charges, current, budgets, now, self._period_ms, reserved)
        if verdict.allowed:
            for c, level in zip(charges, verdict.levels, strict=True):
                tats[c.bucket] = now + level
            for b in budgets:
                holds = self._holds.setdefault(b.counter, Holds())
                holds.release(hold)  # a hold taken again replaces itself
                holds.by_request[hold] = (b.cost, now + self._hold_ms)
                holds.total += b.cost
        self._takes += 1
        if self._takes % self.SWEEP_EVERY == 0:
            self._tats = {b: t for b, t in tats.items() if t > now}
            self._holds = {c: h for c, h in self._holds.items() if h.by_request}
        return verdict

    def settle(
        self, corrections: Sequence[tuple[Charge, int]], spends: Sequence[Spend] = ()
    ) -> None:
        """Correct each charge by `delta` units: what the request really used less its cost;
        release each spend's reservation (the spend itself the caller counts)."""
        now = self._clock()
        for c, delta in corrections:
            if delta:
                tat = adjusted(self._tats.get(c.bucket, 0.0), now, c.limit, delta, self._period_ms)
                self._tats[c.bucket] = tat
        for s in spends:
            holds = self._holds.get(s.budget.counter)
            if holds is not None:
                holds.release(s.hold)

    def level(self, bucket: str) -> float:
        """A bucket's level now (ms to drain)."""
        return level_of(self._tats.get(bucket, 0.0), self._clock())
