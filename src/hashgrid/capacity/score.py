"""A node's (or a site's) reliability over a sliding window: a pure function from counts to a
score in [0, 1], with its parts kept so an operator sees why a node gets less traffic.

Parts, each in [0, 1]:
- `uptime`: the share of the window the node was ready (alive by its heartbeats);
- `success`: requests answered without a 5xx, of those it served;
- `speed`: requests whose time to first token met its capacity class's expectation;
- `agreement`: spot-checks its answers passed (`capacity/agreement.py`).
Rates carry a few good events of prior (`(good + k) / (all + k)`), so a node with no traffic
yet scores 1 and one bad request among none is not a verdict of 0.

score = uptime * success * agreement * (1 + speed) / 2: a node that is down, fails requests or
alters answers loses traffic in proportion; slowness only halves it at worst, since a slow
answer is still an answer (and the router's load signal already sees most slowness).
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass

WINDOW_S = 24 * 3600.0

# What a request's time to first token should stay under, by capacity class: a request slower
# than this counts as slow. Generous: ttft holds queueing and long prompts too.
EXPECTED_TTFT_MS = {"cpu": 10_000.0, "gpu-small": 4_000.0, "unverified": 10_000.0}
GPU_TTFT_MS = 2_000.0  # every other GPU class


def expected_ttft_ms(capacity_class: str | None) -> float:
    """The time to first token a request on a node of `capacity_class` should stay under."""
    if capacity_class is None:
        return EXPECTED_TTFT_MS["unverified"]
    return EXPECTED_TTFT_MS.get(capacity_class, GPU_TTFT_MS)


@dataclass(frozen=True, slots=True)
class Counts:
    """What happened on one node (or the nodes of one site) within the window."""

    up_s: float = 0.0  # seconds ready
    seen_s: float = 0.0  # seconds observed (up or not)
    requests: int = 0
    failed: int = 0  # answered 5xx
    slow: int = 0  # first token later than the class's expectation
    checks: int = 0  # spot-checks of its answers
    mismatches: int = 0  # of those, failed

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(
            self.up_s + other.up_s,
            self.seen_s + other.seen_s,
            self.requests + other.requests,
            self.failed + other.failed,
            self.slow + other.slow,
            self.checks + other.checks,
            self.mismatches + other.mismatches,
        )


@dataclass(frozen=True, slots=True)
class Reliability:
    score: float
    uptime: float
    success: float
    speed: float
    agreement: float

    def parts(self) -> dict[str, float]:
        return {
            "uptime": self.uptime,
            "success": self.success,
            "speed": self.speed,
            "agreement": self.agreement,
        }


# Good events assumed before any is counted: a node's first failed request out of one costs
# it a sixth of its success, not half. Spot-checks get one: an altered answer is rarer news.
REQUEST_PRIOR = 5
CHECK_PRIOR = 1


def _rate(bad: int, total: int, prior: int) -> float:
    """Good of all with `prior` good events assumed; counts out of order are clamped."""
    total = max(total, 0)
    bad = min(max(bad, 0), total)
    return (total - bad + prior) / (total + prior)


def reliability(c: Counts) -> Reliability:
    """The score of `c` and its parts (module docstring)."""
    uptime = min(max(c.up_s / c.seen_s, 0.0), 1.0) if c.seen_s > 0 else 1.0
    success = _rate(c.failed, c.requests, REQUEST_PRIOR)
    speed = _rate(c.slow, c.requests, REQUEST_PRIOR)
    agreement = _rate(c.mismatches, c.checks, CHECK_PRIOR)
    score = uptime * success * agreement * (1 + speed) / 2
    return Reliability(round(score, 4), uptime, success, speed, agreement)


def total(counts: Iterable[Counts]) -> Counts:
    """The counts of a site: its nodes' summed."""
    out = Counts()
    for c in counts:
        out = out + c
    return out


def decayed(
    up_s: float, seen_s: float, up: bool, dt_s: float, window_s: float = WINDOW_S
) -> tuple[float, float]:
    """Uptime seconds carried over a pass `dt_s` long in which the node was `up`: an
    exponentially decaying window of time constant `window_s` (a sliding window that needs no
    history of heartbeats)."""
    keep = math.exp(-max(dt_s, 0.0) / window_s)
    step = max(dt_s, 0.0)
    return up_s * keep + (step if up else 0.0), seen_s * keep + step
