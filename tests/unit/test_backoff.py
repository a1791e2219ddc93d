"""Exponential backoff with full jitter."""

import random

from hypothesis import given
from hypothesis import strategies as st

from hashgrid.common.backoff import Backoff


class HighestDraw(random.Random):
    """Always draws the top of the range, so each delay equals its ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


class LowestDraw(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


def test_delays_stay_within_half_base_and_cap() -> None:
    backoff = Backoff(base=0.5, cap=30.0, rng=random.Random(42))
    delays = [backoff.next_delay() for _ in range(200)]
    assert all(0.25 <= d <= 30.0 for d in delays)


def test_delays_reach_above_early_ceilings_once_grown() -> None:
    backoff = Backoff(base=0.5, cap=30.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(100)]
    assert max(delays[:2]) <= 1.0  # ceilings 0.5, then 1.0
    assert max(delays[20:]) > 1.0  # later draws use the capped ceiling of 30


@given(
    base=st.floats(0.01, 5.0),
    factor=st.floats(1.0, 100.0),
    seed=st.integers(0, 2**32),
    count=st.integers(1, 40),
)
def test_property_every_delay_is_within_bounds(
    base: float, factor: float, seed: int, count: int
) -> None:
    cap = base * factor
    backoff = Backoff(base=base, cap=cap, rng=random.Random(seed))
    for attempt in range(count):
        ceiling = min(cap, base * 2**attempt)
        # uniform() may round a hair past its upper end; allow one part in 10^12.
        assert base / 2 <= backoff.next_delay() <= ceiling * (1 + 1e-12)


def test_ceilings_double_then_stay_at_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=5.0, rng=HighestDraw())
    assert [backoff.next_delay() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_lowest_delay_is_half_the_base() -> None:
    backoff = Backoff(base=2.0, cap=60.0, rng=LowestDraw())
    assert {backoff.next_delay() for _ in range(5)} == {1.0}


def test_each_delay_counts_an_attempt() -> None:
    backoff = Backoff(rng=random.Random(0))
    for _ in range(3):
        backoff.next_delay()
    assert backoff.attempts == 3


def test_reset_starts_over() -> None:
    backoff = Backoff(base=0.5, cap=30.0, rng=HighestDraw())
    for _ in range(6):
        backoff.next_delay()
    assert backoff.next_delay() == 30.0
    backoff.reset()
    assert backoff.attempts == 0
    assert [backoff.next_delay() for _ in range(3)] == [0.5, 1.0, 2.0]


def test_same_seed_gives_the_same_delays() -> None:
    first = Backoff(rng=random.Random(3))
    second = Backoff(rng=random.Random(3))
    assert [first.next_delay() for _ in range(10)] == [second.next_delay() for _ in range(10)]


def test_a_long_outage_keeps_delays_capped() -> None:
    backoff = Backoff(base=0.5, cap=30.0, rng=random.Random(5))
    delays = [backoff.next_delay() for _ in range(1100)]
    assert all(0.25 <= d <= 30.0 for d in delays)
