"""Compute contracts as money (billing/contracts.py): the hours of a term within a period, one
hour watched from samples, and the CONTRACT and CREDIT lines with the nodes their money comes
from."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashgrid.billing.contracts import (
    HOUR,
    Hour,
    Sample,
    Terms,
    due_status,
    lines,
    observe,
)
from hashgrid.billing.lines import LineKind
from hashgrid.billing.money import PICO_PER_USD, MoneyError
from hashgrid.billing.periods import Period
from hashgrid.contracts.states import ContractStatus

START = datetime(2026, 3, 31, 22, tzinfo=UTC)  # two hours before April
PRICE = 3 * PICO_PER_USD  # $3 per replica-hour
LATER = datetime(2030, 1, 1, tzinfo=UTC)  # every hour of the term is over


def terms(
    replicas: int = 2,
    hours: int = 5,
    percent: int = 100,
    cancelled_at: datetime | None = None,
) -> Terms:
    return Terms("c1", "llama", replicas, PRICE, START, START + hours * HOUR, percent, cancelled_at)


def watched(start: datetime, *samples: Sample, reserved: int = 2) -> Hour:
    hour = None
    for s in samples:
        hour = observe(hour, start, reserved, s)
    assert hour is not None
    return hour


ALL_READY = Sample({"n1": 1, "n2": 1})


def test_a_term_is_billed_per_period_for_the_hours_over() -> None:
    t = terms()
    assert list(t.hours(Period(2026, 3), LATER)) == [START, START + HOUR]
    assert len(list(t.hours(Period(2026, 4), LATER))) == 3
    # Mid-hour: the hour in progress is not billed yet.
    assert list(t.hours(Period(2026, 3), START + 90 * timedelta(minutes=1))) == [START]


def test_a_cancelled_contract_is_billed_through_the_hour_it_was_cancelled_in() -> None:
    t = terms(cancelled_at=START + HOUR + timedelta(minutes=10))
    assert t.billed_until == START + 2 * HOUR
    assert list(terms(cancelled_at=START - HOUR).hours(Period(2026, 3), LATER)) == []


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"replicas": 0}, ValueError),
        ({"starts_at": START + timedelta(minutes=1)}, ValueError),
        ({"ends_at": START}, ValueError),
        ({"price_pico": 1}, MoneyError),
        ({"sla_credit_percent": 101}, ValueError),
    ],
)
def test_terms_refuse_what_cannot_be_billed_exactly(bad: dict[str, object], error: type) -> None:
    values: dict[str, object] = {
        "id": "c", "model": "m", "replicas": 1, "price_pico": PRICE, "starts_at": START,
        "ends_at": START + HOUR,
    }  # fmt: skip
    with pytest.raises(error):
        Terms(**(values | bad))  # type: ignore[arg-type]


def test_the_clock_walks_a_contract_along_its_transitions() -> None:
    end = START + HOUR
    assert due_status(ContractStatus.PENDING, START, end, START - HOUR) == ContractStatus.PENDING
    assert due_status(ContractStatus.PENDING, START, end, START) == ContractStatus.ACTIVE
    assert due_status(ContractStatus.PENDING, START, end, end) == ContractStatus.ENDED
    assert due_status(ContractStatus.CANCELLED, START, end, end) == ContractStatus.CANCELLED


def test_an_hour_keeps_the_fewest_ready_and_where_the_missing_ones_were() -> None:
    h = watched(
        START,
        ALL_READY,
        Sample({"n1": 1}, down={"n2": 1}),  # n2 lost its replica: missing on n2
        Sample({"n1": 1}, starting={"n3": 1}),  # its replacement starts on n3 (not lower)
        ALL_READY,
    )
    assert (h.reserved, h.min_ready, h.samples, h.missed_replicas) == (2, 1, 4, 1)
    assert h.hosted == {"n1": 4, "n2": 2}
    assert h.missed == {"n2": 1}
    assert watched(START, Sample(), ALL_READY).missed == {None: 2}


def test_a_missing_replica_is_charged_to_the_node_that_let_it_down_not_its_replacement() -> None:
    both = Sample(down={"z-lost": 1}, starting={"a-new": 1})
    assert watched(START, both, reserved=1).missed == {"z-lost": 1}
    assert watched(START, Sample(starting={"a-new": 1}), reserved=1).missed == {"a-new": 1}
    short = Sample(down={"n1": 1}, starting={"n2": 1})
    assert watched(START, short, reserved=3).missed == {"n1": 1, "n2": 1, None: 1}


def test_more_ready_replicas_than_reserved_count_as_the_reserved() -> None:
    """A replica rolling over to a new generation is ready twice for a moment."""
    h = watched(START, Sample({"a": 1, "b": 1, "c": 1}))
    assert (h.min_ready, h.hosted) == (2, {"a": 1, "b": 1})


def test_a_fully_served_term_is_billed_whole_to_the_nodes_that_hosted_it() -> None:
    t = terms(hours=2)
    hours = [watched(START, ALL_READY), watched(START + HOUR, ALL_READY)]
    [line] = lines(t, hours, Period(2026, 3), LATER)
    assert (line.kind, line.quantity, line.unit, line.unit_price_pico) == (
        LineKind.CONTRACT, 4, "replica-hours", PRICE,
    )  # fmt: skip
    assert line.amount_pico == 4 * PRICE
    assert line.cents == 1200
    assert line.sources == (("n1", 2 * PRICE), ("n2", 2 * PRICE))
    assert (line.model, line.tier, line.ref) == ("llama", "firm", "c1")


def test_reserved_hours_are_billed_whether_used_or_watched_or_not() -> None:
    """An hour nobody watched is billed, credits nothing and earns no node anything."""
    [line] = lines(terms(hours=2), [], Period(2026, 3), LATER)
    assert line.amount_pico == 4 * PRICE
    assert line.sources == ((None, 4 * PRICE),)


def test_a_missed_hour_is_credited_to_the_node_whose_replica_was_missing() -> None:
    """Hour 1: n2's replica down half the hour (1 replica-hour missed, charged to n2); hour 2:
    only one replica placed anywhere (1 missed, the platform's). At 50% credit."""
    t = terms(hours=2, percent=50)
    hours = [
        watched(START, ALL_READY, Sample({"n1": 1}, down={"n2": 1})),
        watched(START + HOUR, Sample({"n1": 1})),
    ]
    contract, credit = lines(t, hours, Period(2026, 3), LATER)
    assert contract.amount_pico == 4 * PRICE
    assert contract.sources == (("n1", 2 * PRICE), ("n2", PRICE // 2), (None, 3 * PRICE // 2))
    assert (credit.kind, credit.quantity, credit.unit_price_pico) == (LineKind.CREDIT, 2, PRICE)
    assert credit.amount_pico == -PRICE  # 2 replica-hours at 50%
    assert credit.sources == (("n2", -PRICE // 2), (None, -PRICE // 2))
    assert credit.cents == -300


def test_a_period_bills_only_its_own_hours() -> None:
    hours = [watched(START + i * HOUR, Sample({"n1": 1})) for i in range(5)]
    march, april = (lines(terms(), hours, Period(2026, m), LATER) for m in (3, 4))
    assert [x.quantity for x in march] == [4, 2]
    assert [x.quantity for x in april] == [6, 3]
    assert lines(terms(), hours, Period(2026, 5), LATER) == []


samples_st = st.lists(
    st.builds(
        Sample,
        st.dictionaries(st.sampled_from(("n1", "n2", "n3")), st.integers(0, 3)),
        st.dictionaries(st.sampled_from(("n1", "n2", "n4")), st.integers(0, 3)),
        st.dictionaries(st.sampled_from(("n2", "n4", "n5")), st.integers(0, 3)),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(0, 100),
    st.lists(st.one_of(st.none(), samples_st), min_size=1, max_size=4),
)
def test_the_sources_of_each_line_add_up_to_its_amount(
    replicas: int, percent: int, per_hour: list[list[Sample] | None]
) -> None:
    """Exact integers: whatever the samples, each line's parts sum to it, the credit's count is
    the missed replica-hours, and no credit exceeds what the hours cost."""
    t = Terms("c", "m", replicas, PRICE + 7 * 10**6, START, START + len(per_hour) * HOUR, percent)
    hours = [
        watched(START + i * HOUR, *samples, reserved=replicas)
        for i, samples in enumerate(per_hour)
        if samples is not None
    ]
    found = lines(t, hours, Period(2026, 3), LATER) + lines(t, hours, Period(2026, 4), LATER)
    for line in found:
        assert sum(pico for _, pico in line.sources) == line.amount_pico
    contracts = [x for x in found if x.kind == LineKind.CONTRACT]
    credits = [x for x in found if x.kind == LineKind.CREDIT]
    assert sum(x.quantity for x in contracts) == replicas * len(per_hour)
    missed = sum(h.missed_replicas for h in hours)
    assert sum(x.quantity for x in credits) == missed
    assert -sum(x.amount_pico for x in credits) == missed * t.price_pico * percent // 100
    assert -sum(x.amount_pico for x in credits) <= sum(x.amount_pico for x in contracts)
