"""The fleet's hindsight plan: one programme over many sites that routes firm work to sites in
its region's reach and flex work anywhere, and powers each site; with one site it is the single
site's hindsight plan."""

import numpy as np
import pytest

from hashgrid.energy import (
    AsicGroup,
    Demand,
    FleetDemand,
    FleetPlan,
    GpuFleet,
    Market,
    Site,
    plan_fleet_hindsight,
    plan_hindsight,
    settle,
    tariff,
)

T = 48
DAY = np.repeat(np.arange(20000, 20002), 24)
S21 = AsicGroup("Antminer S21", 1000, 200.0, 3500.0)  # 3.5 MW, worth $119/MWh at $50/PH/day


def site(name: str, budget_mw: float = 4.0, nodes: int = 50) -> Site:
    return Site(name, budget_mw, (S21,), GpuFleet(nodes, 6.2, 1.6, 16.8, 8.4), ancillary_mw=1.0)


def flat(price: float) -> Market:
    return tariff(DAY, np.full(T, price), np.full(T, 50.0))


def ercot_like() -> Market:
    rng = np.random.default_rng(7)
    dam = 40 + 30 * np.sin(np.arange(T) / 24 * 2 * np.pi) + rng.normal(0, 5, T)
    rt = dam + rng.normal(0, 20, T)
    rt[[10, 30]] = 900.0
    return Market(1.0, DAY, rt, dam, np.full(T, 50.0), np.full(T, 4.0))


def margin(sites: tuple[Site, ...], markets: tuple[Market, ...], plan: FleetPlan) -> float:
    return sum(
        settle("fleet", s, m, d).margin
        for s, m, d in zip(sites, markets, plan.dispatches, strict=True)
    )


def test_one_site_earns_what_its_own_hindsight_plan_earns() -> None:
    rng = np.random.default_rng(3)
    firm, flex = rng.uniform(0, 30, T), rng.uniform(0, 20, T)
    one, market = site("a"), ercot_like()
    fleet = plan_fleet_hindsight(
        (one,), (market,), FleetDemand(firm[None, :], flex, 3, np.array([[True]]))
    )
    alone = plan_hindsight(one, market, Demand(firm, flex, flex_wait=3))
    assert margin((one,), (market,), fleet) == pytest.approx(
        settle("alone", one, market, alone).margin, rel=1e-9
    )


def test_flex_work_goes_where_power_is_cheap_and_firm_stays_within_reach() -> None:
    """Region 0 reaches only the dear site, region 1 both: region 0's firm work is served at the
    dear site, region 1's and all flex work at the cheap one."""
    sites = (site("cheap"), site("dear"))
    markets = (flat(30.0), flat(200.0))
    firm = np.vstack([np.full(T, 5.0), np.full(T, 8.0)])
    reach = np.array([[False, True], [True, True]])
    plan = plan_fleet_hindsight(sites, markets, FleetDemand(firm, np.full(T, 4.0), 2, reach))
    assert plan.firm_routed[0, 1] == pytest.approx(np.full(T, 5.0))
    assert plan.firm_routed[0, 0] == pytest.approx(np.zeros(T))
    assert plan.firm_routed[1, 0] == pytest.approx(np.full(T, 8.0))
    cheap, dear = plan.dispatches
    assert cheap.flex_served.sum() == pytest.approx(4.0 * T)
    assert dear.flex_served.sum() == pytest.approx(0.0)
    assert dear.mining_mw.sum() == pytest.approx(0.0)  # $200 is more than the S21s earn


def test_work_beyond_the_nodes_in_reach_is_lost_and_the_budget_holds() -> None:
    """20 nodes in reach for 30 nodes of firm work: 20 are served; the miners give way."""
    sites = (site("a", budget_mw=3.6, nodes=20), site("b", nodes=50))
    markets = (flat(30.0), flat(30.0))
    firm = np.full((1, T), 30.0)
    reach = np.array([[True, False]])
    plan = plan_fleet_hindsight(sites, markets, FleetDemand(firm, np.zeros(T), 0, reach))
    a, b = plan.dispatches
    assert a.firm_served == pytest.approx(np.full(T, 20.0))
    assert b.firm_served == pytest.approx(np.zeros(T))
    drawn = a.mining_mw.sum(axis=1) + a.gpu_mw(sites[0])
    assert np.all(drawn <= sites[0].budget_mw + 1e-9)
    assert a.mining_mw.sum(axis=1) == pytest.approx(np.full(T, 3.6 - 20 * 0.0062))


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="one row per region"):
        FleetDemand(np.zeros((2, T)), np.zeros(T), 0, np.ones((1, 1), bool))
    with pytest.raises(ValueError, match="one market and one reach column per site"):
        plan_fleet_hindsight(
            (site("a"),),
            (flat(30.0),),
            FleetDemand(np.zeros((1, T)), np.zeros(T), 0, np.ones((1, 2), bool)),
        )
