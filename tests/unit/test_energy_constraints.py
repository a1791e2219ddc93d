"""Minimum on-time of GPU nodes and the ASIC ramp limit, worked by hand: in the hindsight plan
and in the dispatch every policy goes through. (Random cases with both limits are in the
planner's, online and baseline tests, through `check_feasible`.)"""

import numpy as np
import pytest

from hashgrid.energy import (
    Demand,
    always_mine,
    day_ahead_rule,
    plan_hindsight,
    plan_online,
    price_threshold,
    serve_first,
    settle,
    tariff,
)

from support.energy import check_feasible, market, small_site

QUIET = Demand(np.zeros(5), np.zeros(5))
FIRM_PEAK = Demand(np.array([1.0, 0, 0, 0, 0]), np.zeros(5))


def known(prices: list[float]) -> tuple[np.ndarray, np.ndarray]:
    n = len(prices)
    return np.zeros(n, dtype=np.int64), np.array(prices)


def test_a_node_started_for_a_peak_stays_on_idle_for_its_minimum_on_time() -> None:
    """One interval of firm work, minimum on-time 3, $20 power, miners worth $100/MWh: the node
    stays on two more intervals at 0.1 MW idle, which the miners give way to, in hindsight and
    in every policy that serves on arrival."""
    site, mkt = small_site(min_on=3), market([20.0] * 5)
    plan = plan_hindsight(site, mkt, FIRM_PEAK)
    assert plan.nodes_on == pytest.approx([1.0, 1.0, 1.0, 0.0, 0.0], abs=1e-9)
    assert plan.mining_mw[:, 0] == pytest.approx([0.6, 0.9, 0.9, 1.0, 1.0], abs=1e-9)
    # firm 200 - 0.4 x 20; idle 2 x 0.1 x 20; mining 4.4 MWh x (100 - 20)
    assert settle("h", site, mkt, plan).margin == pytest.approx(192.0 - 4.0 + 352.0)
    for policy in (plan_online, always_mine, day_ahead_rule):
        other = policy(site, mkt, FIRM_PEAK)
        assert other.nodes_on == pytest.approx(plan.nodes_on)
        assert other.mining_mw == pytest.approx(plan.mining_mw)


def test_hindsight_declines_flex_work_that_does_not_pay_for_its_minimum_on_time() -> None:
    """A flex node-hour nets $50 - 0.4 x $20 against 0.4 MW of mining worth $80/MWh: $10. With a
    minimum on-time of 3 the node then idles two intervals, 0.2 MWh that costs $20 and displaces
    $16 of mining: -$10, so hindsight leaves the work."""
    flex_peak = Demand(np.zeros(5), np.array([1.0, 0, 0, 0, 0]))
    mkt = market([20.0] * 5)
    served = plan_hindsight(small_site(), mkt, flex_peak)
    assert served.flex_served == pytest.approx([1.0, 0, 0, 0, 0], abs=1e-9)
    assert settle("h", small_site(), mkt, served).margin == pytest.approx(410.0)
    held = plan_hindsight(small_site(min_on=3), mkt, flex_peak)
    assert held.flex_served == pytest.approx([0.0] * 5, abs=1e-9)
    assert settle("h", small_site(min_on=3), mkt, held).margin == pytest.approx(400.0)


def test_serve_first_keeps_its_nodes_on_with_a_minimum_on_time() -> None:
    """Every node on from the first interval; a minimum on-time changes nothing for it."""
    site, mkt = small_site(budget_mw=1.2, min_on=3), market([30.0] * 5)
    assert serve_first(site, mkt, FIRM_PEAK).nodes_on == pytest.approx([2.0] * 5)


def test_serve_first_keeps_on_only_the_nodes_its_budget_carries_at_full_firm_load() -> None:
    """Budget 1 MW, four nodes of 0.4 MW busy and 0.1 MW idle: at most 2.5 nodes of firm work
    (1 MW); beside them 2.5 nodes idle fit (0.75 + 0.25 MW), so 2.5 stay on, never more."""
    site = small_site(budget_mw=1.0, nodes=4)
    plan = serve_first(site, market([30.0] * 5), FIRM_PEAK)
    assert plan.nodes_on == pytest.approx([2.5] * 5)
    check_feasible(site, plan, FIRM_PEAK)


def test_mining_steps_down_into_a_price_spike_at_its_ramp_limit() -> None:
    """Miners worth $100/MWh, 0.5 MW per interval, $500 for three intervals of a known tariff:
    hindsight steps down before the spike and is at 0 through it; online sees the price only
    when it comes, so it steps down through the first spike interval. Both step up after."""
    site = small_site(ramp_mw=0.5)
    mkt = tariff(*known([20.0, 20.0, 500.0, 500.0, 500.0, 20.0, 20.0]), np.full(7, 2400.0))
    quiet = Demand(np.zeros(7), np.zeros(7))
    plan = plan_hindsight(site, mkt, quiet)
    assert plan.mining_mw[:, 0] == pytest.approx([1.0, 0.5, 0, 0, 0, 0.5, 1.0], abs=1e-9)
    assert settle("h", site, mkt, plan).margin == pytest.approx(80.0 * 3.0)
    online = plan_online(site, mkt, quiet)
    assert online.mining_mw[:, 0] == pytest.approx([1.0, 1.0, 0.5, 0, 0, 0.5, 1.0])
    assert settle("o", site, mkt, online).margin == pytest.approx(80.0 * 3.5 - 400.0 * 0.5)
    unlimited = plan_online(small_site(), mkt, quiet)
    assert unlimited.mining_mw[:, 0] == pytest.approx([1.0, 1.0, 0, 0, 0, 1.0, 1.0])


def test_firm_work_that_grows_is_served_though_the_miners_fall_faster_than_the_ramp() -> None:
    """Ramp 0.1 MW: two nodes of firm work arrive (0.8 MW) after an interval of full mining. The
    miners fall from 1.0 to 0.2 MW in one interval, in hindsight too: it need not ramp down
    ahead of customers' work."""
    site, mkt = small_site(ramp_mw=0.1), market([20.0, 20.0])
    arriving = Demand(np.array([0.0, 2.0]), np.zeros(2))
    for plan in (plan_hindsight(site, mkt, arriving), plan_online(site, mkt, arriving)):
        assert plan.mining_mw[:, 0] == pytest.approx([1.0, 0.2], abs=1e-9)
        assert plan.firm_served == pytest.approx([0.0, 2.0])
        check_feasible(site, plan, arriving)


def test_a_threshold_rule_winds_the_miners_down_at_the_ramp_limit() -> None:
    """A threshold rule that sleeps after a $900 interval: with a 0.25 MW ramp the miners wind
    down 0.25 MW an interval instead of stopping at once."""
    site = small_site(ramp_mw=0.25)
    plan = price_threshold(site, market([10.0, 900.0, 900.0, 900.0, 900.0]), QUIET, 100.0)
    assert plan.mining_mw[:, 0] == pytest.approx([1.0, 1.0, 0.75, 0.5, 0.25])


def test_hindsight_keeps_idle_nodes_on_where_a_negative_price_pays_for_power() -> None:
    """$-50/MWh, 1 MW of miners, a 2.5 MW budget and four idle nodes of 0.1 MW: serve-first is
    paid for its idle nodes' power, so hindsight keeps them on too, and is not beaten."""
    site, mkt = small_site(budget_mw=2.5, nodes=4), market([-50.0] * 5)
    plan = plan_hindsight(site, mkt, QUIET)
    assert plan.nodes_on == pytest.approx([4.0] * 5, abs=1e-9)
    best = settle("h", site, mkt, plan).margin
    assert best == pytest.approx(5 * (150.0 + 20.0))
    assert settle("s", site, mkt, serve_first(site, mkt, QUIET)).margin == pytest.approx(best)


def test_the_feasibility_check_catches_a_dispatch_that_ignores_the_limits() -> None:
    """Plans made without a limit fail `check_feasible` for the site that has it, so the
    property tests that rely on it can fail."""
    mkt = market([20.0, 20.0, 500.0, 500.0, 500.0])
    unheld = always_mine(small_site(), mkt, FIRM_PEAK)
    with pytest.raises(AssertionError):
        check_feasible(small_site(min_on=3), unheld, FIRM_PEAK)
    sudden = price_threshold(small_site(), mkt, QUIET, 100.0)
    with pytest.raises(AssertionError):
        check_feasible(small_site(ramp_mw=0.5), sudden, QUIET)
