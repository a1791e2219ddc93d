"""The online policy: it reads nothing from the future, keeps every constraint, learns the
spread it corrects day-ahead prices with, and commits grid offers only when they pay."""

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashgrid.energy import (
    Demand,
    Dispatch,
    Market,
    OnlineConfig,
    Rules,
    Site,
    always_mine,
    commit_offer,
    day_ahead_rule,
    day_before,
    dispatch,
    forecast_rt,
    plan_online,
    price_threshold,
    serve_first,
    settle,
    tariff,
)
from hashgrid.energy.forecast import spread_slope

from support.energy import cases, check_feasible, market, small_site

Case = tuple[Site, Market, Demand]
Policy = Callable[[Site, Market, Demand], Dispatch]
POLICIES: dict[str, Policy] = {
    "online": plan_online,
    "always": always_mine,
    "threshold": lambda s, m, d: price_threshold(s, m, d, 100.0),
    "day-ahead": day_ahead_rule,
    "serve-first": serve_first,
}


def head(dispatch: Dispatch, k: int) -> list[np.ndarray]:
    return [
        dispatch.mining_mw[:k],
        dispatch.nodes_on[:k],
        dispatch.flex_served[:k],
        dispatch.offered_mw[:k],
    ]


def changed_from(mkt: Market, k: int, rnd: np.random.Generator) -> Market:
    """The same market with every real-time price from interval k on redrawn, and every
    day-ahead, ancillary and hashprice figure of the days after k's day."""
    later_days = mkt.day > mkt.day[k]
    rt, dam, anc, hp = mkt.rt.copy(), mkt.dam.copy(), mkt.ancillary.copy(), mkt.hashprice.copy()
    rt[k:] = rnd.uniform(-100, 5000, len(rt) - k)
    dam[later_days] = rnd.uniform(-100, 5000, later_days.sum())
    anc[later_days] = rnd.uniform(0, 500, later_days.sum())
    hp[later_days] = rnd.uniform(0, 10_000, later_days.sum())
    return Market(mkt.interval_h, mkt.day, rt, dam, hp, anc)


def unchanged_through(policy: Policy, case: Case, cut: int, seed: int) -> bool:
    """Whether `policy` decides the same up to and including interval `cut` when every price not
    yet known when `cut` is decided (its own real-time price included), and the demand of later
    intervals, is rewritten."""
    site, mkt, demand = case
    rnd = np.random.default_rng(seed)
    flex, firm, later = demand.flex.copy(), demand.firm.copy(), slice(cut + 1, None)
    flex[later] = rnd.uniform(0, 9, len(flex[later]))
    firm[later] = rnd.uniform(0, 9, len(firm[later]))
    before = policy(site, mkt, demand)
    after = policy(site, changed_from(mkt, cut, rnd), Demand(firm, flex, demand.flex_wait))
    return all(
        np.array_equal(a, b)
        for a, b in zip(head(before, cut + 1), head(after, cut + 1), strict=True)
    )


@pytest.mark.parametrize("name", list(POLICIES))
@settings(max_examples=60, deadline=None)
@given(case=cases(), cut=st.integers(0, 17), seed=st.integers(0, 2**32 - 1))
def test_decisions_do_not_change_when_the_future_does(
    name: str, case: Case, cut: int, seed: int
) -> None:
    """Rewriting every price not yet known when `cut` is decided (and later demand) leaves the
    decisions through `cut` as they were."""
    assert unchanged_through(POLICIES[name], case, cut, seed)


def test_the_future_check_catches_a_policy_that_peeks() -> None:
    """A rule that mines when the real-time price of the interval it decides is low fails the
    check above, so the check is not vacuous."""

    def peeking(site: Site, mkt: Market, demand: Demand) -> Dispatch:
        mine = mkt.rt[:, None] < site.mining_value(mkt.hashprice)
        return dispatch(site, demand, Rules(mine, np.ones(len(mkt), bool), np.zeros(len(mkt))))

    quiet = (small_site(), market([50.0] * 18, per_day=6), Demand(np.zeros(18), np.zeros(18)))
    assert unchanged_through(plan_online, quiet, cut=9, seed=0)
    assert not unchanged_through(peeking, quiet, cut=9, seed=0)


def persistent_spread(days: int) -> Market:
    """Day-ahead $60 all day; real-time $140 above it from hour 10 to 23, every day."""
    n = 24 * days
    dam = np.full(n, 60.0)
    return market(list(dam + np.where(np.arange(n) % 24 >= 10, 140.0, 0.0)), dam=list(dam))


@pytest.mark.parametrize("cut", [24 * 20 + h for h in (0, 3, 9, 10, 15)])
def test_online_learns_the_spread_from_the_past_only(cut: int) -> None:
    """Where the learnt slope matters (a spread that persists), rewriting the price of the
    interval being decided still changes nothing."""
    mkt = persistent_spread(40)
    case = (small_site(), mkt, Demand(np.zeros(len(mkt)), np.zeros(len(mkt))))
    assert unchanged_through(plan_online, case, cut, seed=cut)


@settings(max_examples=60, deadline=None)
@given(cases())
def test_online_keeps_every_constraint_and_serves_all_firm_work(case: Case) -> None:
    site, mkt, demand = case
    plan = plan_online(site, mkt, demand)
    check_feasible(site, plan, demand)
    assert plan.firm_served == pytest.approx(site.servable_firm(demand.firm))


def test_online_mines_below_worth_and_sleeps_above_on_a_known_tariff() -> None:
    """With known prices (a tariff) the forecast is the price, so online mining is exact."""
    site = small_site()
    day = np.zeros(4, dtype=np.int64)
    mkt = tariff(day, np.array([50.0, 150.0, 99.0, 101.0]), np.full(4, 2400.0))
    plan = plan_online(site, mkt, Demand(np.zeros(4), np.zeros(4)))
    assert plan.mining_mw[:, 0] == pytest.approx([1.0, 0.0, 1.0, 0.0])


def test_online_reacts_to_a_spread_that_persists() -> None:
    """Day-ahead says $60 all day, real-time runs at $200 from hour 10 to 23: once the slope has
    seen the spread persist, online sleeps from the hour after it appears (and in the hour after
    it ends, which it cannot know has ended), though day-ahead alone would mine."""
    mkt = persistent_spread(40)
    n = len(mkt)
    plan = plan_online(site := small_site(), mkt, Demand(np.zeros(n), np.zeros(n)))
    last_day = slice(n - 24, n)
    assert plan.mining_mw[last_day, 0][11:] == pytest.approx(0.0)
    assert plan.mining_mw[last_day, 0][:11] == pytest.approx([0.0] + [1.0] * 10)
    dam_rule = day_ahead_rule(site, mkt, Demand(np.zeros(n), np.zeros(n)))
    assert dam_rule.mining_mw[last_day, 0] == pytest.approx(1.0)


def test_spread_slope_recovers_a_persistent_spread() -> None:
    """On s_t = 0.8 s_{t-1} + noise the learnt slope is close to 0.8, from past pairs only."""
    rnd = np.random.default_rng(1)
    s = np.zeros(5000)
    for t in range(1, len(s)):
        s[t] = 0.8 * s[t - 1] + rnd.normal()
    beta = spread_slope(s, window=2000)
    assert beta[-1] == pytest.approx(0.8, abs=0.05)
    assert list(beta[:2]) == [0.0, 0.0]  # no pair known yet


def test_forecast_is_the_day_ahead_price_before_anything_is_learnt() -> None:
    mkt = market([300.0, 10.0], dam=[40.0, 45.0])
    assert forecast_rt(mkt)[0] == 40.0


def test_offer_is_committed_when_it_pays_and_not_before_history() -> None:
    """Quiet prices far below the miners' worth: the offer costs nothing expected, so all the
    allowed MW is offered, from the third day on (the first two have no settled spreads)."""
    site = small_site(budget_mw=2.0, nodes=2, ancillary_mw=0.5)
    n = 24 * 4
    mkt = market([40.0] * n, ancillary=[3.0] * n)
    offered = commit_offer(site, mkt, OnlineConfig())
    assert offered[:48] == pytest.approx(0.0)
    assert offered[48:] == pytest.approx(0.5)


def test_no_offer_when_spikes_cost_more_than_it_pays() -> None:
    """Real-time spikes $900 above day-ahead one hour in four: being unable to curtail costs
    more on average than a $3 offer pays, so nothing is offered."""
    site = small_site(budget_mw=2.0)
    n = 24 * 4
    rt = [940.0 if t % 4 == 0 else 40.0 for t in range(n)]
    mkt = market(rt, dam=[40.0] * n, ancillary=[3.0] * n)
    assert commit_offer(site, mkt, OnlineConfig()) == pytest.approx(0.0)


def test_offer_leaves_room_for_every_gpu_node() -> None:
    """Budget 1 MW, two 0.4 MW nodes: at most 0.2 MW of miners can be promised to the grid."""
    site = small_site(budget_mw=1.0, nodes=2, ancillary_mw=5.0)
    n = 24 * 3
    offered = commit_offer(site, market([40.0] * n, ancillary=[3.0] * n), OnlineConfig())
    assert offered.max() == pytest.approx(0.2)


def test_flex_waits_out_an_expensive_interval_online() -> None:
    """Flex work is worth $125/MWh; at a known $300 it waits for its deadline, at $20 it runs."""
    site = small_site()
    day = np.zeros(3, dtype=np.int64)
    mkt = tariff(day, np.array([300.0, 300.0, 20.0]), np.full(3, 2400.0))
    demand = Demand(np.zeros(3), np.array([1.0, 0.0, 0.0]), flex_wait=2)
    assert plan_online(site, mkt, demand).flex_served == pytest.approx([0.0, 0.0, 1.0])
    late = Demand(np.zeros(3), np.array([1.0, 0.0, 0.0]), flex_wait=1)
    assert plan_online(site, mkt, late).flex_served == pytest.approx([0.0, 1.0, 0.0])


def test_hashprice_is_known_only_after_its_day() -> None:
    """day_before gives each interval the last figure of an earlier day, skipping gaps."""
    day = np.array([0, 0, 1, 1, 3, 3], dtype=np.int64)
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert day_before(day, values) == pytest.approx([1.0, 1.0, 2.0, 2.0, 4.0, 4.0])
    assert day_before(day, values, lag_days=2) == pytest.approx([1.0, 1.0, 1.0, 1.0, 4.0, 4.0])


def test_online_margin_matches_its_ledger_rows() -> None:
    """Totals are the sums of the per-interval rows."""
    site = small_site()
    mkt = market([50.0, 150.0, 80.0], ancillary=[5.0, 5.0, 10.0])
    ledger = settle("online", site, mkt, plan_online(site, mkt, Demand(np.ones(3), np.ones(3))))
    assert ledger.margin == pytest.approx(float(ledger.margin_usd.sum()))
