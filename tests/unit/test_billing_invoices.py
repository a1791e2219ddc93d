"""An invoice's lines from summed usage: one line per model x tier x token kind x unit price,
each node's part in its sources, late usage as adjustments naming its period, each line rounded
once to the cent and the totals adding the rounded lines."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hashgrid.billing.invoices import (
    CACHED,
    COMPLETION,
    PROMPT,
    Totals,
    UsageSum,
    invoice_lines,
    usage_lines,
)
from hashgrid.billing.lines import Line, LineKind
from hashgrid.billing.money import PICO_PER_CENT, UnitPrices, price_of
from hashgrid.billing.periods import Period

NOV = Period(2026, 11)
OCT = Period(2026, 10)
CHEAP = UnitPrices(prompt=price_of("0.50"), cached=price_of("0.25"), completion=price_of("1.50"))
DEAR = UnitPrices(prompt=price_of("1.00"), cached=price_of("0.50"), completion=price_of("3.00"))


def used(
    node: str | None = "n1",
    prices: UnitPrices = CHEAP,
    period: Period = NOV,
    tokens: tuple[int, int, int] = (1_000_000, 0, 1_000_000),
    model: str = "llama",
    tier: str | None = "firm",
) -> UsageSum:
    prompt, cached, completion = tokens
    return UsageSum(model, tier, prices, node, period, prompt, cached, completion)


def test_one_line_per_token_kind_with_each_nodes_part_as_its_source() -> None:
    lines = usage_lines(NOV, [used("n1", tokens=(3_000_000, 1_000_000, 2_000_000)), used("n2")])
    assert [(line.unit, line.quantity) for line in lines] == [
        (PROMPT, 3_000_000),
        (CACHED, 1_000_000),
        (COMPLETION, 3_000_000),
    ]
    prompt, cached, completion = lines
    assert prompt.amount_pico == 3_000_000 * CHEAP.prompt
    assert prompt.sources == (("n1", 2_000_000 * CHEAP.prompt), ("n2", 1_000_000 * CHEAP.prompt))
    assert cached.sources == (("n1", 1_000_000 * CHEAP.cached),)
    assert completion.cents == 450  # 3M tokens at $1.50 per 1M
    assert all(line.kind == LineKind.USAGE and line.ref is None for line in lines)


def test_a_price_change_makes_a_line_at_each_price() -> None:
    lines = usage_lines(NOV, [used(prices=CHEAP), used(prices=DEAR)])
    completions = [line for line in lines if line.unit == COMPLETION]
    assert [(c.unit_price_pico, c.quantity) for c in completions] == [
        (CHEAP.completion, 1_000_000),
        (DEAR.completion, 1_000_000),
    ]


def test_models_and_tiers_are_lines_of_their_own() -> None:
    lines = usage_lines(NOV, [used(tier="firm"), used(tier="flex"), used(model="qwen")])
    assert {(line.model, line.tier) for line in lines} == {
        ("llama", "firm"),
        ("llama", "flex"),
        ("qwen", "firm"),
    }
    assert len(lines) == 6  # prompt and completion each; no cached tokens, no cached line


def test_usage_of_an_earlier_period_is_an_adjustment_naming_it_after_the_periods_usage() -> None:
    lines = usage_lines(NOV, [used(period=OCT, node="n2"), used()])
    assert [(line.kind, line.ref) for line in lines] == [
        (LineKind.USAGE, None),
        (LineKind.USAGE, None),
        (LineKind.ADJUSTMENT, "2026-10"),
        (LineKind.ADJUSTMENT, "2026-10"),
    ]
    assert "2026-10" in lines[-1].description


def test_usage_of_a_later_period_is_refused() -> None:
    with pytest.raises(ValueError, match="2026-12"):
        usage_lines(NOV, [used(period=Period(2026, 12))])


def test_each_line_is_rounded_once_half_to_even_and_the_totals_add_the_rounded_lines() -> None:
    """Three lines of half a cent each: rounded each to even (0, 0, 0 cents from 0.5 ...)."""
    half = PICO_PER_CENT // 2
    prices = UnitPrices(prompt=half, cached=0, completion=3 * half)
    lines = usage_lines(NOV, [used(prices=prices, tokens=(1, 0, 1))])
    assert [line.cents for line in lines] == [0, 2]  # 0.5 -> 0, 1.5 -> 2
    credit = Line(LineKind.CREDIT, "missed hour", 1, "replica-hours", 100, -250 * PICO_PER_CENT)
    contract = Line(LineKind.CONTRACT, "reserved", 10, "replica-hours", 1, 1000 * PICO_PER_CENT)
    every = invoice_lines(NOV, [used(prices=prices, tokens=(1, 0, 1))], [credit, contract])
    assert [line.kind for line in every] == [
        LineKind.USAGE,
        LineKind.USAGE,
        LineKind.CONTRACT,
        LineKind.CREDIT,
    ]
    totals = Totals.of(every)
    assert (totals.subtotal, totals.credits, totals.total) == (1002, 250, 752)


def test_the_lines_are_the_same_whatever_order_the_sums_come_in() -> None:
    sums = [used("n2"), used("n1", prices=DEAR), used("n1", period=OCT), used(None)]
    assert usage_lines(NOV, sums) == usage_lines(NOV, reversed(sums))


token_counts = st.integers(0, 2**31 - 1)
sums_st = st.lists(
    st.builds(
        UsageSum,
        model=st.sampled_from(["a", "b"]),
        tier=st.sampled_from(["firm", "flex", None]),
        prices=st.builds(
            UnitPrices, st.integers(0, 10**10), st.integers(0, 10**10), st.integers(0, 10**10)
        ),
        node_id=st.sampled_from(["n1", "n2", None]),
        period=st.sampled_from([OCT, NOV]),
        prompt_tokens=token_counts,
        cached_tokens=token_counts,
        completion_tokens=token_counts,
    ),
    max_size=12,
)


@given(sums_st)
def test_the_lines_carry_every_token_and_every_exact_pico_of_the_sums(sums: list[UsageSum]) -> None:
    lines = usage_lines(NOV, sums)
    exact = sum(s.prices.cost(s.prompt_tokens, s.cached_tokens, s.completion_tokens) for s in sums)
    assert sum(line.amount_pico for line in lines) == exact
    assert sum(line.quantity for line in lines) == sum(
        s.prompt_tokens + s.completion_tokens for s in sums
    )
    for line in lines:
        assert sum(amount for _, amount in line.sources) == line.amount_pico
        assert line.quantity > 0
