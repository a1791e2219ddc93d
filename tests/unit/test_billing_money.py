"""The billing core's money: exact unit prices and costs, one half-even rounding to the cent."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hashgrid.billing.money import (
    MoneyError,
    UnitPrices,
    cents,
    format_cents,
    micros_of,
    micros_up,
    price_of,
    usd,
    usd_per_mtok,
)
from hashgrid.billing.periods import Period


def test_a_price_sheet_price_is_exact_pico_dollars_per_token() -> None:
    assert price_of("0.50") == 500_000
    assert price_of(Decimal("0.000001")) == 1
    assert usd_per_mtok(500_000) == Decimal("0.50")
    with pytest.raises(MoneyError, match="6 decimal places"):
        price_of("0.0000001")
    with pytest.raises(MoneyError):
        price_of("-1")
    with pytest.raises(MoneyError):
        price_of("10000.01")


def test_a_cost_counts_cached_prompt_tokens_at_their_own_price() -> None:
    prices = UnitPrices(prompt=500_000, cached=250_000, completion=1_500_000)
    assert prices.cost(1000, 400, 100) == 600 * 500_000 + 400 * 250_000 + 100 * 1_500_000
    assert prices.cost(10, 99, 0) == 10 * 250_000  # never more cached than prompt


def test_cents_round_half_to_even_once() -> None:
    half_cent = 5 * 10**9
    assert cents(half_cent) == 0  # 0.5 cent -> 0 (even)
    assert cents(3 * half_cent) == 2  # 1.5 cents -> 2
    assert cents(5 * half_cent) == 2  # 2.5 cents -> 2
    assert cents(5 * half_cent + 1) == 3
    assert cents(-3 * half_cent) == -2


def test_budgets_round_costs_up_to_the_micro_dollar() -> None:
    assert micros_up(1) == 1
    assert micros_up(10**6) == 1
    assert micros_up(10**6 + 1) == 2
    assert micros_up(0) == 0
    assert micros_of("1.25") == 1_250_000
    with pytest.raises(MoneyError):
        micros_of("0.0000001")


def test_amounts_print_as_a_ledger_prints_them() -> None:
    assert format_cents(123456) == "$1,234.56"
    assert format_cents(-300) == "-$3.00"
    assert usd(2_500_000_000_000) == Decimal("2.50")
    assert usd(1) == Decimal("0.000000000001")


@given(st.lists(st.integers(min_value=0, max_value=10**15), max_size=50))
def test_summing_exact_costs_then_rounding_is_within_half_a_cent(costs: list[int]) -> None:
    total = sum(costs)
    assert abs(cents(total) * 10**10 - total) <= 5 * 10**9


def test_the_billing_period_is_the_utc_calendar_month() -> None:
    p = Period.of(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert str(p) == "2026-12"
    assert p.next() == Period(2027, 1)
    assert p.end == datetime(2027, 1, 1, tzinfo=UTC)
    assert Period.parse("2026-02").hours == 28 * 24
    assert datetime(2026, 12, 1, tzinfo=UTC) in p
    with pytest.raises(ValueError, match="YYYY-MM"):
        Period.parse("2026-13")
