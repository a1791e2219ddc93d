"""The baselines (what sites run today) and the dispatch they share with the online policy."""

import numpy as np
import pytest
from hypothesis import given, settings

from hashgrid.energy import (
    AsicGroup,
    Demand,
    Market,
    Rules,
    Site,
    always_mine,
    day_ahead_rule,
    dispatch,
    price_threshold,
    serve_first,
    settle,
)

from support.energy import cases, check_feasible, market, small_site

QUIET = Demand(np.zeros(4), np.zeros(4))


@settings(max_examples=60, deadline=None)
@given(cases())
def test_baselines_keep_every_constraint_and_serve_all_firm_work(
    case: tuple[Site, Market, Demand],
) -> None:
    site, mkt, demand = case
    for plan in (
        always_mine(site, mkt, demand),
        price_threshold(site, mkt, demand, 100.0),
        day_ahead_rule(site, mkt, demand),
        serve_first(site, mkt, demand),
    ):
        check_feasible(site, plan, demand)
        assert plan.firm_served == pytest.approx(site.servable_firm(demand.firm))
        assert plan.offered_mw == pytest.approx(0.0)  # no baseline sells flexibility


def test_always_mine_runs_the_miners_on_what_inference_leaves() -> None:
    """One busy 0.4 MW node in a 1 MW budget leaves 0.6 MW to mine, at any price."""
    mkt = market([10.0, 900.0, 10.0, 900.0])
    plan = always_mine(small_site(), mkt, Demand(np.array([0, 1, 0, 1.0]), np.zeros(4)))
    assert plan.mining_mw[:, 0] == pytest.approx([1.0, 0.6, 1.0, 0.6])


def test_threshold_sleeps_in_the_interval_after_a_high_price() -> None:
    """Foreman-style: it sees a price only once its interval is over, so it mines through the
    first expensive hour and sleeps through the first cheap one after."""
    plan = price_threshold(small_site(), market([10.0, 900.0, 900.0, 10.0]), QUIET, 100.0)
    assert plan.mining_mw[:, 0] == pytest.approx([1.0, 1.0, 0.0, 0.0])


def test_day_ahead_rule_uses_the_day_ahead_price_and_yesterdays_hashprice() -> None:
    """Miners worth $100/MWh at yesterday's hashprice: hours with day-ahead below $100 mine,
    whatever real-time does; today's hashprice (here, doubled) is not read."""
    dam = [50.0, 150.0, 99.0, 101.0]
    mkt = Market(
        1.0,
        np.array([0, 0, 1, 1]),
        np.full(4, 500.0),
        np.array(dam),
        np.array([2400.0, 2400.0, 4800.0, 4800.0]),
        np.zeros(4),
    )
    plan = day_ahead_rule(small_site(), mkt, QUIET)
    assert plan.mining_mw[:, 0] == pytest.approx([1.0, 0.0, 1.0, 0.0])


def test_serve_first_keeps_idle_nodes_on_and_pays_for_them() -> None:
    """Two nodes at 0.1 MW idle stay on without work: 0.2 MW less mining than always-mine, and
    the margin lower by exactly that power's worth."""
    site, mkt = small_site(budget_mw=1.2), market([30.0] * 4)
    first, always = serve_first(site, mkt, QUIET), always_mine(site, mkt, QUIET)
    assert first.nodes_on == pytest.approx([2.0] * 4)
    assert first.mining_mw[:, 0] == pytest.approx([1.0] * 4)  # 1.2 - 0.2 idle
    assert always.mining_mw[:, 0] == pytest.approx([1.0] * 4)
    margin_gap = settle("a", site, mkt, always).margin - settle("s", site, mkt, first).margin
    assert margin_gap == pytest.approx(4 * 0.2 * 30.0)


def test_power_goes_to_the_most_efficient_miners_first() -> None:
    """Half a megawatt to share between a 15 J/TH and a 20 J/TH fleet: the 15 J/TH one runs."""
    good, old = AsicGroup("S21", 100, 200.0, 3000.0), AsicGroup("S19", 100, 150.0, 3000.0)
    site = Site("s", 0.5, (old, good), small_site().gpus)
    plan = always_mine(site, market([10.0]), Demand(np.zeros(1), np.zeros(1)))
    assert plan.mining_mw[0] == pytest.approx([0.2, 0.3])


def test_committed_offer_keeps_miners_running_when_rules_say_sleep() -> None:
    """0.5 MW promised to the grid runs even in an interval the rules would curtail."""
    site = small_site()
    rules = Rules(np.zeros((2, 1), bool), np.ones(2, bool), np.array([0.5, 0.0]))
    plan = dispatch(site, Demand(np.zeros(2), np.zeros(2)), rules)
    assert plan.mining_mw[:, 0] == pytest.approx([0.5, 0.0])
    assert plan.offered_mw == pytest.approx([0.5, 0.0])


def test_flex_work_past_its_wait_is_dropped_not_served_late() -> None:
    """Held work runs at its deadline if there is room; beyond the nodes it is dropped."""
    site = small_site(budget_mw=5.0, nodes=2)
    rules = Rules(np.ones((4, 1), bool), np.zeros(4, bool), np.zeros(4))
    demand = Demand(np.zeros(4), np.array([3.0, 0.0, 0.0, 0.0]), flex_wait=2)
    plan = dispatch(site, demand, rules)
    assert plan.flex_served == pytest.approx([0.0, 0.0, 2.0, 0.0])
