"""The restart schedule of a failed engine: backoff with jitter, reset once it served a while."""

import random

from hashgrid.common.restarts import Restarts


class HighestDraw(random.Random):
    """Always draws the top of the range, so each delay equals its ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_waits_double_from_the_first_up_to_the_cap_and_restarts_are_counted() -> None:
    restarts = Restarts(first_s=1.0, cap_s=60.0, rng=HighestDraw())
    delays = [restarts.next_delay(served_s=0.0) for _ in range(9)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert restarts.count == 9


def test_jitter_keeps_each_wait_between_half_the_first_and_its_ceiling() -> None:
    restarts = Restarts(first_s=1.0, cap_s=60.0, rng=random.Random(3))
    for attempt in range(50):
        assert 0.5 <= restarts.next_delay(served_s=0.0) <= min(60.0, 2.0**attempt)


def test_an_engine_that_served_long_enough_starts_the_schedule_over() -> None:
    restarts = Restarts(first_s=1.0, cap_s=60.0, stable_s=300.0, rng=HighestDraw())
    for _ in range(5):
        restarts.next_delay(served_s=10.0)
    assert restarts.next_delay(served_s=299.0) == 32.0  # not long enough: keeps growing
    assert restarts.next_delay(served_s=300.0) == 1.0
    assert restarts.next_delay(served_s=0.0) == 2.0
    assert restarts.count == 8  # the count is the replica's whole history, never reset
