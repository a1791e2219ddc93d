"""Splitting invoice lines between operators and the platform: each line's cents go to its
nodes by the largest remainder (adding up exactly, never negative for a line that charges), each
node's part to its operator at its share, credits to the operator whose node caused them; the
ledger balances to the cent: gross = earnings + platform share + credits."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hashgrid.billing.ledger import Owner, allocate, operator_part, split
from hashgrid.billing.lines import Line, LineKind
from hashgrid.billing.money import PICO_PER_CENT

CENT = PICO_PER_CENT
OWNERS = {
    "n1": Owner("op-x", "site-x"),
    "n2": Owner("op-x", "site-x2"),
    "n3": Owner("op-y", "site-y", share_bps=8000),
}


def usage(*sources: tuple[str | None, int], model: str = "llama") -> Line:
    amount = sum(a for _, a in sources)
    return Line(
        LineKind.USAGE, model, 1, "prompt tokens", amount, amount, model, "firm", None, sources
    )


def credit(node: str | None, amount_cents: int) -> Line:
    amount = -amount_cents * CENT
    return Line(
        LineKind.CREDIT,
        "missed hour",
        1,
        "replica-hours",
        amount,
        amount,
        "llama",
        "firm",
        "c1",
        ((node, amount),),
    )


def test_a_lines_cents_go_to_its_nodes_by_the_largest_remainder() -> None:
    """Three equal nodes share 100 cents: 34, 33, 33, the odd cent to the first."""
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate(10, [5, 3, 2]) == [5, 3, 2]
    assert allocate(1, [1, 2]) == [0, 1]
    assert allocate(-100, [-1, -1, -1]) == [-34, -33, -33]
    assert allocate(0, [0, 0]) == [0, 0]


def test_parts_of_mixed_signs_or_a_total_over_nothing_are_refused() -> None:
    with pytest.raises(ValueError, match="sign"):
        allocate(10, [5, -3])
    with pytest.raises(ValueError, match="0"):
        allocate(10, [0, 0])


def test_an_operators_share_is_rounded_half_to_even() -> None:
    assert operator_part(100, 7000) == 70
    assert operator_part(5, 5000) == 2  # 2.5 -> 2
    assert operator_part(7, 5000) == 4  # 3.5 -> 4
    assert operator_part(3, 7000) == 2  # 2.1 -> 2


def test_earnings_by_site_node_and_model_at_each_operators_share() -> None:
    lines = [
        usage(("n1", 600 * CENT), ("n3", 400 * CENT)),
        usage(("n2", 200 * CENT), model="qwen"),
        usage((None, 50 * CENT)),  # an external endpoint: the platform's
    ]
    ledger = split([(lines, OWNERS)])
    x, y = ledger.operators["op-x"], ledger.operators["op-y"]
    assert x.earned == {("site-x", "n1", "llama"): 420, ("site-x2", "n2", "qwen"): 140}
    assert x.by(0) == {"site-x": 420, "site-x2": 140}
    assert x.by(2) == {"llama": 420, "qwen": 140}
    assert y.gross == 320  # 80% of 400
    assert (ledger.gross, ledger.platform_share, ledger.earnings) == (1250, 370, 880)
    assert ledger.difference == 0


def test_a_credit_is_charged_to_the_operator_whose_node_caused_it_or_to_the_platform() -> None:
    lines = [usage(("n1", 1000 * CENT)), credit("n1", 30), credit(None, 20)]
    ledger = split([(lines, OWNERS)])
    x = ledger.operators["op-x"]
    assert (x.gross, x.credits, x.net) == (700, 30, 670)
    assert (ledger.credits, ledger.platform_gross, ledger.platform_credits) == (50, 300, 20)
    assert ledger.gross == ledger.earnings + ledger.platform_share + ledger.credits


def test_what_a_node_of_no_known_owner_earns_is_the_platforms() -> None:
    ledger = split([([usage(("gone", 100 * CENT))], OWNERS)])
    assert ledger.operators == {}
    assert ledger.platform_share == 100


def test_sources_that_do_not_add_up_to_the_line_are_refused() -> None:
    bad = Line(LineKind.USAGE, "x", 1, "prompt tokens", 5, 10 * CENT, sources=(("n1", CENT),))
    with pytest.raises(ValueError, match="add up"):
        split([([bad], OWNERS)])


@given(st.integers(0, 10**9), st.lists(st.integers(0, 10**15), min_size=1, max_size=8))
def test_allocation_adds_up_exactly_and_is_never_negative(total: int, parts: list[int]) -> None:
    if sum(parts) == 0:
        total = 0
    split_ = allocate(total, parts)
    assert sum(split_) == total
    assert all(p >= 0 for p in split_)
    # No part is more than a cent away from its exact proportion.
    whole = sum(parts) or 1
    assert all(abs(s * whole - total * p) < whole for s, p in zip(split_, parts, strict=True))


node_st = st.sampled_from(["n1", "n2", "n3", "gone", None])
amount_st = st.integers(0, 10**14)
line_st = st.one_of(
    st.lists(st.tuples(node_st, amount_st), min_size=1, max_size=4).map(lambda s: usage(*s)),
    st.tuples(node_st, st.integers(0, 10**4)).map(lambda c: credit(*c)),
)
owners_st = st.fixed_dictionaries(
    {
        n: st.builds(Owner, st.sampled_from(["op-x", "op-y"]), st.just("s"), st.integers(0, 10_000))
        for n in ["n1", "n2", "n3"]
    }
)


@given(st.lists(st.tuples(st.lists(line_st, max_size=6), owners_st), max_size=4))
def test_the_ledger_balances_to_the_cent(billed: list[tuple[list[Line], dict[str, Owner]]]) -> None:
    ledger = split(billed)
    lines = [line for lines, _ in billed for line in lines]
    assert ledger.gross == sum(line.cents for line in lines if line.kind != LineKind.CREDIT)
    assert ledger.credits == -sum(line.cents for line in lines if line.kind == LineKind.CREDIT)
    assert ledger.difference == 0
    assert ledger.platform_gross >= 0
    assert all(e.gross >= 0 and e.credits >= 0 for e in ledger.operators.values())
