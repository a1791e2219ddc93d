"""The hindsight plan: exact on a case worked by hand, within every constraint on random cases,
and never beaten by a policy that knows less."""

import numpy as np
import pytest
from hypothesis import given, settings

from hashgrid.energy import (
    Demand,
    Market,
    Site,
    always_mine,
    day_ahead_rule,
    plan_hindsight,
    plan_online,
    price_threshold,
    serve_first,
    settle,
)

from support.energy import cases, check_feasible, market, small_site

Case = tuple[Site, Market, Demand]


def test_three_intervals_give_the_plan_worked_by_hand() -> None:
    """Miners worth $100/MWh; real-time $50, $150, $80; flex work that may wait one interval.

    t0: mine the whole MW and offer 0.5 MW at $5. t1: $150 is above the miners' worth and above
    flex work's $125/MWh, so nothing runs and the flex work waits. t2: firm work takes one node
    (0.4 MW); the waiting flex node nets $50 - 0.4 x $80 = $18, more than the 0.4 MW of mining
    (0.4 x $20) and grid offer (0.3 x $10 beyond the 0.2 MW still mined) it displaces.
    """
    site = small_site()
    mkt = market([50.0, 150.0, 80.0], ancillary=[5.0, 5.0, 10.0])
    demand = Demand(np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0]), flex_wait=1)
    plan = plan_hindsight(site, mkt, demand)
    assert plan.mining_mw[:, 0] == pytest.approx([1.0, 0.0, 0.2], abs=1e-9)
    assert plan.offered_mw == pytest.approx([0.5, 0.0, 0.2], abs=1e-9)
    assert plan.flex_served == pytest.approx([0.0, 0.0, 1.0], abs=1e-9)
    assert plan.nodes_on == pytest.approx([0.0, 0.0, 2.0], abs=1e-9)
    ledger = settle("hindsight", site, mkt, plan)
    # t0: 50 + 2.5; t2: firm 200 - 32, flex 50 - 32, mining 0.2 x 20, offer 0.2 x 10
    assert ledger.margin == pytest.approx(52.5 + 168.0 + 18.0 + 4.0 + 2.0)


def test_firm_work_beyond_the_nodes_is_capped_not_infeasible() -> None:
    """Five nodes of firm work on a two-node site: two are served, and the plan still solves."""
    site = small_site(budget_mw=2.0)
    plan = plan_hindsight(site, market([10.0]), Demand(np.array([5.0]), np.array([0.0])))
    assert plan.firm_served == pytest.approx([2.0])
    assert plan.mining_mw.sum() == pytest.approx(1.0)


def test_a_site_without_miners_still_plans() -> None:
    """A GPU-only site: no ASIC groups, so nothing to mine and nothing to offer."""
    site = small_site()
    gpu_only = Site("g", 1.0, (), site.gpus, ancillary_mw=1.0)
    demand = Demand(np.array([1.0, 0.0]), np.array([1.0, 0.0]))
    plan = plan_hindsight(gpu_only, market([20.0, 20.0]), demand)
    assert plan.mining_mw.shape == (2, 0)
    assert plan.flex_served == pytest.approx([1.0, 0.0])
    assert plan.offered_mw == pytest.approx([0.0, 0.0])


@settings(max_examples=60, deadline=None)
@given(cases())
def test_hindsight_keeps_every_constraint_and_serves_all_firm_work(case: Case) -> None:
    site, mkt, demand = case
    plan = plan_hindsight(site, mkt, demand)
    check_feasible(site, plan, demand)
    assert plan.firm_served == pytest.approx(site.servable_firm(demand.firm))


@settings(max_examples=60, deadline=None)
@given(cases())
def test_no_policy_beats_hindsight(case: Case) -> None:
    site, mkt, demand = case
    best = settle("hindsight", site, mkt, plan_hindsight(site, mkt, demand)).margin
    others = [
        plan_online(site, mkt, demand),
        always_mine(site, mkt, demand),
        price_threshold(site, mkt, demand, 100.0),
        day_ahead_rule(site, mkt, demand),
        serve_first(site, mkt, demand),
    ]
    for other in others:
        assert settle("other", site, mkt, other).margin <= best + 1e-6 * (1 + abs(best))
