"""Builders of small sites, markets and demand for the power planner's tests, and hypothesis
strategies that draw them."""

import numpy as np
from hypothesis import strategies as st

from hashgrid.energy import AsicGroup, Demand, Dispatch, GpuFleet, Market, Site


def one_mw_asics() -> AsicGroup:
    """One 1 MW 'miner' at 1,000 J/TH: worth hashprice / 24 per MWh ($100 at $2,400/PH/day)."""
    return AsicGroup("A", count=1, th_s=1000.0, watts=1e6)


def small_site(
    budget_mw: float = 1.0,
    nodes: int = 2,
    ancillary_mw: float = 0.5,
    idle_kw: float = 100.0,
    min_on: int = 1,
    ramp_mw: float | None = None,
) -> Site:
    """1 MW of miners and `nodes` GPU nodes of 0.4 MW busy ($200/h firm, $50/h flex)."""
    gpus = GpuFleet(
        nodes,
        busy_kw=400.0,
        idle_kw=idle_kw,
        firm_usd_per_node_hour=200.0,
        flex_usd_per_node_hour=50.0,
        min_on_intervals=min_on,
    )
    return Site("s", budget_mw, (one_mw_asics(),), gpus, ancillary_mw, ramp_mw)


def market(
    rt: list[float],
    dam: list[float] | None = None,
    ancillary: list[float] | None = None,
    hashprice: float = 2400.0,
    per_day: int = 24,
    interval_h: float = 1.0,
) -> Market:
    """A market over len(rt) intervals, `per_day` to a day."""
    n = len(rt)
    return Market(
        interval_h=interval_h,
        day=np.arange(n, dtype=np.int64) // per_day,
        rt=np.array(rt, dtype=np.float64),
        dam=np.array(dam if dam is not None else rt, dtype=np.float64),
        hashprice=np.full(n, hashprice),
        ancillary=np.array(ancillary if ancillary is not None else [0.0] * n, dtype=np.float64),
    )


def check_feasible(site: Site, dispatch: Dispatch, demand: Demand) -> None:
    """The constraints every policy must keep, asserted interval by interval."""
    eps = 1e-6
    mining = dispatch.mining_mw.sum(axis=1)
    assert np.all(mining + dispatch.gpu_mw(site) <= site.budget_mw + eps)
    assert np.all(dispatch.mining_mw >= -eps)
    assert np.all(dispatch.mining_mw <= site.asic_mw + eps)
    assert np.all(dispatch.offered_mw <= mining + eps)
    assert np.all(dispatch.offered_mw <= site.ancillary_mw + eps)
    assert np.all(dispatch.firm_served + dispatch.flex_served <= dispatch.nodes_on + eps)
    assert np.all(dispatch.nodes_on <= site.gpus.nodes + eps)
    served = np.cumsum(dispatch.flex_served)
    assert np.all(served <= np.cumsum(demand.flex) + eps)  # never served before it arrived
    # Minimum on-time: nodes on cover every node started in the last U intervals (none on
    # before the first).
    starts = np.maximum(np.diff(dispatch.nodes_on, prepend=0.0), 0.0)
    recent = np.convolve(starts, np.ones(site.gpus.min_on_intervals))[: len(starts)]
    assert np.all(dispatch.nodes_on >= recent - eps)
    # Ramp limit: up by R at most; down by R plus the busy power of the firm work's growth.
    if site.asic_ramp_mw is not None:
        step = np.diff(mining)
        growth = np.maximum(np.diff(dispatch.firm_served), 0.0) * site.gpus.busy_kw / 1e3
        assert np.all(step <= site.asic_ramp_mw + eps)
        assert np.all(-step <= site.asic_ramp_mw + growth + eps)


prices_st = st.floats(-50.0, 400.0, allow_nan=False)


@st.composite
def cases(draw: st.DrawFn, days: int = 3, per_day: int = 6) -> tuple[Site, Market, Demand]:
    """A random site (one or two ASIC models, a few GPU nodes, with or without a minimum on-time
    and a ramp limit) on a random market."""
    n = days * per_day
    groups = tuple(
        AsicGroup(f"g{i}", draw(st.integers(1, 4)), draw(st.floats(200.0, 300.0)), 250_000.0)
        for i in range(draw(st.integers(1, 2)))
    )
    nodes = draw(st.integers(0, 4))
    idle_kw, flex_usd = draw(st.floats(0.0, 150.0)), draw(st.floats(0.0, 150.0))
    gpus = GpuFleet(nodes, 300.0, idle_kw, 150.0, flex_usd, draw(st.integers(1, 4)))
    budget = draw(st.floats(0.2, 2.5))
    ramp = draw(st.one_of(st.none(), st.floats(0.0, 1.0)))
    site = Site("s", budget, groups, gpus, draw(st.sampled_from([0.0, 0.3, 2.0])), ramp)
    vector = st.lists(prices_st, min_size=n, max_size=n)
    rt, dam = draw(vector), draw(vector)
    ancillary = draw(st.lists(st.floats(0.0, 30.0), min_size=n, max_size=n))
    hashprice = np.repeat(
        draw(st.lists(st.floats(1000.0, 5000.0), min_size=days, max_size=days)), per_day
    )
    interval_h = draw(st.sampled_from([1.0, 0.25]))
    mkt = Market(
        interval_h,
        np.arange(n, dtype=np.int64) // per_day,
        np.array(rt),
        np.array(dam),
        hashprice,
        np.array(ancillary),
    )
    load = st.lists(st.floats(0.0, 5.0), min_size=n, max_size=n)
    demand = Demand(np.array(draw(load)), np.array(draw(load)), draw(st.integers(0, 3)))
    return site, mkt, demand
