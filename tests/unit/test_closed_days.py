"""Kept sums of closed days: dropped when a day's records arrive late, never put back stale."""

from datetime import date

from hashgrid.server.usage.closed_days import ClosedDays

DAY, OTHER = date(2026, 12, 1), date(2026, 12, 2)
SUMS = [{"requests": 3}]


def test_sums_are_kept_per_shape_and_day_until_the_day_is_touched() -> None:
    kept = ClosedDays()
    kept.put("acme by day", DAY, SUMS, kept.generation(DAY))
    kept.put("acme by day", OTHER, SUMS, kept.generation(OTHER))
    assert kept.get("acme by day", DAY) == SUMS
    assert kept.get("globex by day", DAY) is None
    kept.touched([DAY])
    assert kept.get("acme by day", DAY) is None
    assert kept.get("acme by day", OTHER) == SUMS


def test_sums_read_before_a_late_record_was_stored_are_not_kept() -> None:
    kept = ClosedDays()
    generation = kept.generation(DAY)  # a summary starts summing the day
    kept.touched([DAY])  # meanwhile a late record of the day is stored
    kept.put("acme by day", DAY, SUMS, generation)
    assert kept.get("acme by day", DAY) is None


def test_the_oldest_sums_make_room_for_new_ones() -> None:
    kept = ClosedDays()
    kept.MOST = 2
    for shape in ("a", "b", "c"):
        kept.put(shape, DAY, SUMS, 0)
    assert (kept.get("a", DAY), len(kept)) == (None, 2)
