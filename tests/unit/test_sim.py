"""The fleet simulator on a small synthetic fleet: it conserves requests and power, keeps firm
demand within the latency limit, reproduces a baseline exactly from a 0 MW what-if, and trades
mining for inference when ASICs become GPU nodes."""

from dataclasses import replace

import numpy as np
import pytest

from hashgrid.energy import AsicGroup, Market, plan_hindsight, tariff
from hashgrid.routing import BUILTIN
from hashgrid.sim import (
    Clients,
    DemandSpec,
    Fleet,
    NodeType,
    SimSite,
    convert_asics,
    joint_hindsight,
    simulate,
    site_figures,
    totals,
)
from hashgrid.sim.demand import offered_requests
from hashgrid.sim.fleet import energy_site
from hashgrid.sim.route import allocate, levels

DAYS = 14
NODE = NodeType("NVIDIA H100 80GB HBM3", 8, 80 * 10**9, 4, 3895.0, 6.2, 1.6)
PER_NODE_H = NODE.tokens_s * 3600 / 200.0  # requests one node serves in an hour


def ercot_like(seed: int = 0) -> Market:
    rng = np.random.default_rng(seed)
    day = np.repeat(np.arange(20000, 20000 + DAYS), 24)
    dam = 40 + 20 * np.sin(np.arange(len(day)) / 24 * 2 * np.pi) + rng.normal(0, 5, len(day))
    rt = dam + rng.normal(0, 15, len(day))
    rt[rng.choice(len(day), 6, replace=False)] = 900.0  # scarcity hours
    return Market(1.0, day, rt, dam, np.full(len(day), 50.0), np.full(len(day), 4.0))


def fixed(price: float) -> Market:
    day = np.repeat(np.arange(20000, 20000 + DAYS), 24)
    return tariff(day, np.full(len(day), price), np.full(len(day), 50.0))


def s21(mw: float) -> AsicGroup:
    return AsicGroup("Antminer S21", int(mw * 1e6 // 3500), 200.0, 3500.0)


def fleet(peak_requests_h: float = 6e6, clients: Clients | None = None) -> Fleet:
    sites = (
        SimSite("us-a", "US", 10.0, s21(10.0), 20, ercot_like(), "ERCOT synthetic"),
        SimSite("no-a", "NO", 8.0, s21(8.0), 10, fixed(45.0), "tariff $45/MWh"),
        SimSite("py-a", "PY", 12.0, s21(12.0), 0, fixed(38.0), "tariff $38/MWh"),
    )
    clients = clients or Clients(
        ("US", "DE", "JP"), np.array([0.5, 0.3, 0.2]), np.array([-6.0, 1.0, 9.0])
    )
    demand = DemandSpec(peak_requests_h, 200.0, 0.65, 4, 0.60, 0.30, clients)
    return Fleet(sites, NODE, demand, BUILTIN, 150.0)


@pytest.fixture(scope="module")
def base() -> Fleet:
    return fleet()


def test_requests_are_conserved(base: Fleet) -> None:
    """Every offered request is either served or dropped, fleet-wide and per site."""
    result = simulate(base)
    assert result.offered > 0
    assert result.served + result.dropped == pytest.approx(result.offered, rel=1e-9)
    assert result.dropped > 0  # the fleet is too small and Japan has no site in reach
    for site in result.sites:
        assert site.served <= site.routed_firm + site.routed_flex + 1e-6
        assert site.served_firm == pytest.approx(site.routed_firm, rel=1e-9, abs=1e-6)


def test_power_never_exceeds_the_budget(base: Fleet) -> None:
    """Mining plus GPU power stays within each site's budget in every hour."""
    result = simulate(base)
    for site, spec in zip(result.sites, base.sites, strict=True):
        drawn = site.ledger.mining_mw + site.ledger.inference_mw
        assert np.all(drawn <= spec.budget_mw + 1e-9)
        assert np.all(site.ledger.offered_mw <= site.ledger.mining_mw + 1e-9)


def test_gpus_are_busy_no_more_than_they_exist(base: Fleet) -> None:
    result = simulate(base)
    for site in result.sites:
        assert 0.0 <= site.gpu_utilisation <= 1.0 + 1e-12
    assert result.sites[2].gpu_nodes == 0
    assert result.sites[2].served == 0.0


def test_firm_demand_is_never_routed_beyond_the_latency_limit() -> None:
    """Japan's firm requests have no site within 150 ms (US and Norway are farther on the
    built-in table), so all of them are dropped; its flex requests are served far away."""
    japan = Clients(("JP",), np.array([1.0]), np.array([9.0]))
    result = simulate(fleet(peak_requests_h=1e5, clients=japan))
    assert result.unrouted_firm == pytest.approx(result.offered_firm)
    assert result.unrouted_flex == 0.0
    assert result.served == pytest.approx(result.offered_flex, rel=1e-6)
    assert result.rtt_p50_ms > 150.0


def test_allocate_keeps_firm_pairs_within_the_limit() -> None:
    rtt = np.array([[10.0, 120.0, 200.0], [200.0, 60.0, 140.0]])
    order = np.argsort(rtt, axis=1, kind="stable")
    offered = np.full((5, 2), 100.0)
    room = np.full((5, 3), 30.0)
    alloc = allocate(offered, room, order, rtt, rtt <= 150.0)
    assert np.all(alloc.pairs[rtt > 150.0] == 0.0)
    assert np.all(alloc.load <= room + 1e-9)
    assert alloc.load.sum() + alloc.unrouted.sum() == pytest.approx(offered.sum())


def test_allocate_spreads_over_sites_at_the_same_distance_then_spills() -> None:
    """Two sites at the same RTT share a country's requests by room; a farther one only gets
    what they cannot hold."""
    rtt = np.array([[10.0, 10.0, 50.0]])
    order = np.array([[0, 1, 2]])
    assert levels(order, rtt).tolist() == [[0, 0, 1]]
    alloc = allocate(np.array([[100.0]]), np.array([[60.0, 20.0, 100.0]]), order, rtt, rtt < 1e9)
    assert alloc.load.tolist() == [[60.0, 20.0, 20.0]]
    assert alloc.unrouted.sum() == 0.0


def test_countries_share_a_full_site_in_proportion() -> None:
    rtt = np.array([[10.0], [10.0]])
    alloc = allocate(
        np.array([[30.0, 10.0]]), np.array([[20.0]]), np.zeros((2, 1), np.int64), rtt, rtt < 1e9
    )
    assert alloc.pairs[:, 0].tolist() == pytest.approx([15.0, 5.0])


def test_a_zero_mw_what_if_equals_the_baseline_exactly(base: Fleet) -> None:
    before = simulate(base)
    after = simulate(convert_asics(base, "us-a", 0.0))
    assert totals(after) == pytest.approx(totals(before), rel=0, abs=0, nan_ok=True)
    for a, b in zip(after.sites, before.sites, strict=True):
        assert site_figures(a) == pytest.approx(site_figures(b), rel=0, abs=0, nan_ok=True)


def test_converting_asics_trades_mining_for_inference(base: Fleet) -> None:
    """Norway serves Europe and is full; 1 MW of its ASICs as GPU nodes mines less, adds
    nodes, and serves more requests for more inference revenue."""
    before = simulate(base)
    changed = convert_asics(base, "no-a", 1.0)
    after = simulate(changed)
    assert changed.sites[1].gpu_nodes == 10 + int(1e3 // NODE.busy_kw)
    assert changed.sites[1].asics.mw == pytest.approx(7.0, abs=0.004)
    b, a = before.sites[1], after.sites[1]
    assert a.ledger.mining_usd.sum() < b.ledger.mining_usd.sum()
    assert a.gpu_nodes > b.gpu_nodes
    assert a.served > b.served
    assert a.ledger.inference_usd.sum() > b.ledger.inference_usd.sum()
    assert after.served > before.served


def test_convert_asics_rejects_what_the_site_lacks(base: Fleet) -> None:
    with pytest.raises(ValueError, match="no site"):
        convert_asics(base, "nowhere", 1.0)
    with pytest.raises(ValueError, match="fewer than"):
        convert_asics(base, "no-a", 9.0)


def test_demand_peaks_in_each_countrys_afternoon() -> None:
    clients = Clients(("US", "JP"), np.array([0.5, 0.5]), np.array([-6.0, 9.0]))
    spec = DemandSpec(1000.0, 200.0, 0.65, 4, 0.6, 0.3, clients)
    day = np.repeat(np.arange(20003, 20004), 24)  # 20,003 days after 1970-01-01: a Monday
    offered = offered_requests(day, spec)
    assert int(np.argmax(offered[:, 0])) == 14  # 14:00 Central is the US peak
    assert int(np.argmax(offered[:, 1])) == (14 - 9 - 6) % 24  # 14:00 in Tokyo
    assert offered[:, 0].max() == pytest.approx(500.0)
    weekend = offered_requests(day + 5, spec)  # the Saturday after
    assert weekend[:, 0].max() == pytest.approx(0.7 * 500.0)


def test_fleet_rejects_markets_of_different_hours(base: Fleet) -> None:
    short = replace(
        base.sites[1], market=tariff(np.repeat([20000], 24), np.full(24, 40.0), np.full(24, 50.0))
    )
    with pytest.raises(ValueError, match="same intervals"):
        replace(base, sites=(base.sites[0], short))


def test_the_sites_keep_their_ramp_limit_and_the_fleets_minimum_on_time(base: Fleet) -> None:
    """A site without GPU nodes whose power costs $500 from 14:00 to 16:59 every day sleeps its
    10 MW of miners then; with 1 MW per hour its load moves at most 1 MW from one hour to the
    next. The fleet's minimum on-time reaches every site's nodes."""
    day = np.repeat(np.arange(20000, 20000 + DAYS), 24)
    price = np.where(np.isin(np.arange(len(day)) % 24, [14, 15, 16]), 500.0, 30.0)
    market = tariff(day, price, np.full(len(day), 50.0))
    peaky = replace(base.sites[0], market=market, gpu_nodes=0)
    free = replace(base, sites=(peaky, *base.sites[1:]))
    assert np.abs(np.diff(simulate(free).sites[0].ledger.mining_mw)).max() > 5.0
    ramped = replace(peaky, asic_ramp_mw_per_h=1.0)
    limited = replace(base, sites=(ramped, *base.sites[1:]), min_on_h=3.0)
    mining = simulate(limited).sites[0].ledger.mining_mw
    assert np.abs(np.diff(mining)).max() <= 1.0 + 1e-6
    assert mining.min() < 8.0  # it still sheds, within the limit
    assert energy_site(limited.sites[1], limited, 10).gpus.min_on_intervals == 3


def test_no_run_earns_more_than_the_joint_hindsight_plan(base: Fleet) -> None:
    """Routing first and planning each site online, or even in hindsight, earns no more than
    routing and powering the fleet together with everything known; the joint plan keeps the
    budgets and earns at least as much from inference."""
    joint = joint_hindsight(base)
    best = sum(ledger.margin for ledger in joint)
    online = simulate(base)
    routed_first = simulate(base, policy=plan_hindsight)
    assert online.total("margin_usd") <= routed_first.total("margin_usd") + 1e-6
    assert routed_first.total("margin_usd") <= best + 1e-6
    assert best > 0.99 * routed_first.total("margin_usd")  # not a loose bound on this fleet
    for ledger, spec in zip(joint, base.sites, strict=True):
        assert np.all(ledger.mining_mw + ledger.inference_mw <= spec.budget_mw + 1e-9)
    served = sum(float(ledger.inference_usd.sum()) for ledger in joint)
    assert served >= sum(float(s.ledger.inference_usd.sum()) for s in routed_first.sites) - 1e-6
