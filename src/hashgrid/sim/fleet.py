"""One simulation run: demand routed to sites, each site's power planned hour by hour, and
every site settled, through the same cores the platform runs.

1. Placement (`capacity.py`, the scheduler): which nodes of each site hold replicas.
2. Demand (`demand.py`): requests per hour and client country.
3. Routing (`route.py`, the router's site order): firm requests to sites within the latency
   limit, then flex requests to any site with room left; what finds no room is dropped.
4. Power (`energy.plan_online` per site): the routed load becomes the site's firm busy nodes and
   flex arrivals; the online policy decides ASIC MW, which flex work runs and the grid offer,
   and `energy.settle` prices it. Flex work the planner does not serve by its deadline is
   dropped at the site.

Requests are a fluid (fractions of a request per bucket): totals, not individual requests,
are what the figures need, and a year of 40 sites takes seconds this way.

`joint_hindsight` is the yardstick: the same fleet routed and powered in one linear programme
with everything known (`energy.plan_fleet_hindsight`), the most any run could earn.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hashgrid.energy import (
    Demand,
    Dispatch,
    FleetDemand,
    GpuFleet,
    Ledger,
    Market,
    OnlineConfig,
    Site,
    plan_fleet_hindsight,
    plan_online,
    settle,
)
from hashgrid.energy.site import Floats
from hashgrid.routing import SiteInfo
from hashgrid.sim.capacity import serving_nodes
from hashgrid.sim.demand import offered_requests
from hashgrid.sim.model import Fleet, SimSite
from hashgrid.sim.route import allocate, rtt_matrix, site_order

Policy = Callable[[Site, Market, Demand], Dispatch]  # one site's plan for its routed load


@dataclass(frozen=True)
class SiteResult:
    """One site's year (or period): money from its ledger, requests and latency from routing."""

    name: str
    country: str
    price_source: str
    budget_mw: float
    asic_mw: float
    gpu_nodes: int  # nodes holding replicas
    ledger: Ledger
    routed_firm: float
    routed_flex: float
    served_firm: float
    served_flex: float
    rtt_p50_ms: float  # of served requests; NaN when it served none
    rtt_p95_ms: float
    gpu_utilisation: float  # busy node-hours over node-hours; 0 without nodes

    @property
    def served(self) -> float:
        return self.served_firm + self.served_flex

    @property
    def dropped(self) -> float:
        """Requests routed here and not served: flex work past its wait (never below 0, which
        rounding in the planner's arithmetic could otherwise show)."""
        return max(self.routed_firm + self.routed_flex - self.served, 0.0)


@dataclass(frozen=True)
class FleetResult:
    hours: int
    sites: tuple[SiteResult, ...]
    offered_firm: float
    offered_flex: float
    unrouted_firm: float  # no site within the latency limit had room
    unrouted_flex: float  # no site had room
    rtt_p50_ms: float
    rtt_p95_ms: float
    mining_mw: Floats  # T: fleet totals per hour
    inference_mw: Floats
    offered_mw: Floats

    @property
    def offered(self) -> float:
        return self.offered_firm + self.offered_flex

    @property
    def served(self) -> float:
        return sum(s.served for s in self.sites)

    @property
    def dropped(self) -> float:
        return self.unrouted_firm + self.unrouted_flex + sum(s.dropped for s in self.sites)

    def total(self, field: str) -> float:
        """Sum over sites of a ledger figure: mining_usd, inference_usd, ancillary_usd,
        energy_usd or margin_usd."""
        return float(sum(np.sum(getattr(s.ledger, field)) for s in self.sites))


def weighted_percentile(values: Floats, weights: Floats, q: float) -> float:
    """The smallest value with at least `q` (0-1) of the weight at or below it; NaN if none."""
    total = weights.sum()
    if total <= 0:
        return float("nan")
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, q * total - 1e-9 * total)])


def energy_site(site: SimSite, fleet: Fleet, nodes: int) -> Site:
    """The power planner's view of a site: its budget, miners and serving nodes, paid per
    node-hour at the demand's token prices, with the fleet's minimum on-time and the site's ASIC
    ramp limit; a market with ancillary prices gets a grid offer of what the budget holds beyond
    the GPUs."""
    node, demand, market = fleet.node, fleet.demand, site.market
    mtok_per_node_hour = node.tokens_s * 3600 / 1e6
    gpus = GpuFleet(
        nodes=nodes,
        busy_kw=node.busy_kw,
        idle_kw=node.idle_kw,
        firm_usd_per_node_hour=mtok_per_node_hour * demand.firm_usd_per_mtok,
        flex_usd_per_node_hour=mtok_per_node_hour * demand.flex_usd_per_mtok,
        min_on_intervals=max(market.intervals(fleet.min_on_h), 1),
    )
    ancillary = max(site.budget_mw - gpus.busy_mw, 0.0) if market.ancillary.any() else 0.0
    ramp = site.asic_ramp_mw_per_h
    ramp_mw = None if ramp is None else ramp * market.interval_h
    return Site(site.name, site.budget_mw, (site.asics,), gpus, ancillary, ramp_mw)


@dataclass(frozen=True)
class _Inputs:
    """What routing and planning read, the same for every way of running the fleet."""

    sites: tuple[Site, ...]  # the planner's view of each site, with its serving nodes
    per_node_h: float  # requests one busy node serves in an hour
    offered: Floats  # T x countries: requests offered
    rtt: Floats  # countries x sites, ms
    serves: npt.NDArray[np.bool_]  # sites: holds replicas
    near: npt.NDArray[np.bool_]  # countries x sites: serves, within the latency limit


def _inputs(fleet: Fleet) -> _Inputs:
    demand = fleet.demand
    placed = serving_nodes(fleet)
    countries = demand.clients.countries
    rtt = rtt_matrix(countries, tuple(s.country for s in fleet.sites), fleet.latency)
    serves = np.array([placed[s.name] > 0 for s in fleet.sites])
    return _Inputs(
        sites=tuple(energy_site(s, fleet, placed[s.name]) for s in fleet.sites),
        per_node_h=fleet.node.tokens_s * 3600 / demand.output_tokens,
        offered=offered_requests(fleet.sites[0].market.day, demand),
        rtt=rtt,
        serves=serves,
        near=(rtt <= fleet.latency_limit_ms) & serves,
    )


def simulate(
    fleet: Fleet, config: OnlineConfig | None = None, policy: Policy | None = None
) -> FleetResult:
    """Run the fleet over its markets' hours (see the module docstring). Each site is planned
    by `policy` (the online policy with `config` by default; `plan_hindsight` tells what routing
    first costs against `joint_hindsight`)."""
    demand, t_n = fleet.demand, fleet.hours
    inputs = _inputs(fleet)
    sites, per_node_h, offered, rtt = inputs.sites, inputs.per_node_h, inputs.offered, inputs.rtt
    room = np.column_stack([s.servable_firm(np.full(t_n, np.inf)) * per_node_h for s in sites])
    order = site_order(
        demand.clients.countries,
        tuple(SiteInfo(s.name, s.country) for s in fleet.sites),
        fleet.latency,
    )
    firm = allocate(offered * demand.firm_share, room, order, rtt, inputs.near)
    flex = allocate(
        offered * (1 - demand.firm_share),
        room - firm.load,
        order,
        rtt,
        np.broadcast_to(inputs.serves, rtt.shape),
    )
    plan_site = policy or (lambda site, market, load: plan_online(site, market, load, config))

    results, weights = [], np.zeros_like(rtt)
    mix = np.zeros((3, t_n))
    for s, (sim_site, site) in enumerate(zip(fleet.sites, sites, strict=True)):
        load = Demand(
            firm.load[:, s] / per_node_h, flex.load[:, s] / per_node_h, demand.flex_wait_h
        )
        plan = plan_site(site, sim_site.market, load)
        ledger = settle("sim", site, sim_site.market, plan)
        served_firm = float(plan.firm_served.sum()) * per_node_h
        served_flex = float(plan.flex_served.sum()) * per_node_h
        routed_firm, routed_flex = float(firm.load[:, s].sum()), float(flex.load[:, s].sum())
        # Flex work dropped at the site is taken evenly from the countries that sent it.
        kept = served_flex / routed_flex if routed_flex > 0 else 0.0
        weights[:, s] = firm.pairs[:, s] + flex.pairs[:, s] * kept
        busy = float((plan.firm_served + plan.flex_served).sum())
        mix += np.stack([ledger.mining_mw, ledger.inference_mw, ledger.offered_mw])
        results.append(
            SiteResult(
                name=sim_site.name,
                country=sim_site.country,
                price_source=sim_site.price_source,
                budget_mw=sim_site.budget_mw,
                asic_mw=sim_site.asics.mw,
                gpu_nodes=site.gpus.nodes,
                ledger=ledger,
                routed_firm=routed_firm,
                routed_flex=routed_flex,
                served_firm=served_firm,
                served_flex=served_flex,
                rtt_p50_ms=weighted_percentile(rtt[:, s], weights[:, s], 0.5),
                rtt_p95_ms=weighted_percentile(rtt[:, s], weights[:, s], 0.95),
                gpu_utilisation=busy / (site.gpus.nodes * t_n) if site.gpus.nodes else 0.0,
            )
        )
    return FleetResult(
        hours=t_n,
        sites=tuple(results),
        offered_firm=float(offered.sum() * demand.firm_share),
        offered_flex=float(offered.sum() * (1 - demand.firm_share)),
        unrouted_firm=float(firm.unrouted.sum()),
        unrouted_flex=float(flex.unrouted.sum()),
        rtt_p50_ms=weighted_percentile(rtt.ravel(), weights.ravel(), 0.5),
        rtt_p95_ms=weighted_percentile(rtt.ravel(), weights.ravel(), 0.95),
        mining_mw=mix[0],
        inference_mw=mix[1],
        offered_mw=mix[2],
    )


def joint_hindsight(fleet: Fleet) -> tuple[Ledger, ...]:
    """Each site's ledger under the fleet's hindsight plan (`energy.plan_fleet_hindsight`): the
    same sites, serving nodes, demand and latency limit as `simulate`, routed and powered
    together with every price and request known. No run of `simulate` earns more."""
    demand = fleet.demand
    inputs = _inputs(fleet)
    nodes = inputs.offered / inputs.per_node_h  # T x countries, busy node-hours
    load = FleetDemand(
        firm=(nodes * demand.firm_share).T,
        flex=nodes.sum(axis=1) * (1 - demand.firm_share),
        flex_wait=demand.flex_wait_h,
        reach=inputs.near,
    )
    markets = tuple(s.market for s in fleet.sites)
    plan = plan_fleet_hindsight(inputs.sites, markets, load)
    return tuple(
        settle("joint hindsight", site, market, dispatch)
        for site, market, dispatch in zip(inputs.sites, markets, plan.dispatches, strict=True)
    )
