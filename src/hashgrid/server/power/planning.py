"""A site's online plan from its stored power model and its GPU nodes' work.

A site is planned in intervals of an hour, or of 15 minutes where its price series has them
(`PowerModel.interval`); limits given per hour (minimum on-time, ramp) are converted.

Demand is busy GPU nodes per interval: nodes with a firm replica are firm demand, nodes with
only flex replicas flex demand. Each stored plan records the work it was made from, so a plan
reads what the nodes served in the intervals before (the month the online policy looks back on,
which also tells it which nodes are still within their minimum on-time), what they serve now in
the current interval, and for later intervals a forecast. Inference demand has a daily and a
weekly cycle (business hours, quieter weekends), so the forecast is the mean of the same time on
the same weekday over the last `FORECAST_WEEKS` weeks recorded; where none of those is, the mean
of the same time of day over the last `FORECAST_DAYS` days; where nothing is recorded, the work
now.

A ramp limit (`PowerModel.asic_ramp_mw_per_h`) steps from what the miners were last ordered to
(`service.asic_ordered_before`), not from the plan's own simulation of the intervals before: a
curtailment is obeyed at once, whatever the limit, and when it ends the plan brings the miners
back no faster than the limit allows.

An interval whose plan pauses flex work (its node-hour earns less than the power costs, or
would earn mining) is one where the site takes no flex replica: they move to other sites, as
under a curtailment. Whether flex pays does not depend on how much of it is here, so the
replicas leaving does not change the decision. A site that sets no price for flex work (0, the
default) never pauses it: there is no revenue to weigh its power against.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from hashgrid import energy
from hashgrid.contracts.api.power import IntervalOut, PowerModel
from hashgrid.server.power.gpu_power import busy_power
from hashgrid.server.power.market import HOUR, history, interval_starts, site_market


@dataclass(frozen=True)
class NodeWork:
    """A site's ready nodes by what they serve now."""

    firm: int = 0  # nodes with at least one firm replica
    flex: int = 0  # nodes with flex replicas only
    idle: int = 0  # nodes with no replica
    busy_kw: float | None = None  # what one draws busy (gpu_power.py); None: as the model says


FORECAST_WEEKS = 4
FORECAST_DAYS = 7


@dataclass(frozen=True)
class Planned:
    interval: IntervalOut
    asic_mw: list[float]  # per ASIC group, in the power model's order


def node_kw(model: PowerModel, work: NodeWork) -> tuple[float, float]:
    """What one of the site's nodes draws busy and idle (idle never above busy)."""
    busy = work.busy_kw if work.busy_kw is not None else busy_power(model.gpus, ()).kw
    return busy, min(model.gpus.idle_kw, busy)


def energy_site(name: str, budget_mw: float, model: PowerModel, work: NodeWork) -> energy.Site:
    groups = tuple(
        energy.AsicGroup(g.model, g.count or 0, g.th_s or 0.0, g.watts or 0.0) for g in model.asics
    )
    interval_h = model.interval / HOUR
    gpus = energy.GpuFleet(
        work.firm + work.flex + work.idle,
        *node_kw(model, work),
        model.gpus.firm_usd_per_node_hour,
        model.gpus.flex_usd_per_node_hour,
        min_on_intervals=max(1, math.ceil(model.gpus.min_on_h / interval_h - 1e-9)),
    )
    offer = 0.0 if model.ancillary is None else model.ancillary.mw
    ramp = model.asic_ramp_mw_per_h
    return energy.Site(
        name,
        budget_mw,
        groups,
        gpus,
        ancillary_mw=offer,
        asic_ramp_mw=None if ramp is None else ramp * interval_h,
    )


def node_demand(
    work: NodeWork, recorded: Mapping[datetime, NodeWork], times: list[datetime], now: datetime
) -> energy.Demand:
    """Busy nodes in each interval of `times` (module docstring): recorded before `now` (the
    current interval's start), the work now in it, forecast after it."""
    firm, flex = [], []
    for t in times:
        if t > now:
            same_weekday = (t - timedelta(weeks=w) for w in range(1, FORECAST_WEEKS + 1))
            seen = [recorded[h] for h in same_weekday if h < now and h in recorded]
            if not seen:
                same_time = (t - timedelta(days=d) for d in range(1, FORECAST_DAYS + 1))
                seen = [recorded[h] for h in same_time if h < now and h in recorded]
        else:
            seen = [recorded[t]] if t < now and t in recorded else []
        seen = seen or [work]
        firm.append(sum(w.firm for w in seen) / len(seen))
        flex.append(sum(w.flex for w in seen) / len(seen))
    return energy.Demand(np.array(firm), np.array(flex))


def plan_intervals(
    name: str,
    budget_mw: float,
    model: PowerModel,
    work: NodeWork,
    start: datetime,
    count: int,
    recorded: Mapping[datetime, NodeWork],
    now: datetime,
    asic_before: float | None = None,
) -> list[Planned]:
    """The online policy's decisions for `count` intervals from `start` (an interval's start),
    each taken with only what was known before it, on the work now and `recorded` before `now`
    (the current interval's start); the ASIC ramp steps from `asic_before`, the MW the miners
    were ordered to just before `start`'s plan applies, where known. Raises `Invalid` when a
    source lacks a figure."""
    market = site_market(model, start, count)
    times = interval_starts(model, start, count)
    site = energy_site(name, budget_mw, model, work)
    first = history(model.interval)
    demand = node_demand(work, recorded, times, now)
    rules = energy.online_rules(site, market)
    prices_flex = model.gpus.flex_usd_per_node_hour > 0  # unpriced flex work is never paused
    drawn = None if asic_before is None else {first - 1: asic_before}
    decided = energy.dispatch(site, demand, rules, drawn)
    ledger = energy.settle("online", site, market, decided)
    return [
        Planned(
            IntervalOut(
                start=times[t],
                hours=market.interval_h,
                price_usd_per_mwh=float(market.rt[t]),
                mining_mw=float(ledger.mining_mw[t]),
                inference_mw=float(ledger.inference_mw[t]),
                offered_mw=float(ledger.offered_mw[t]),
                mining_usd=float(ledger.mining_usd[t]),
                inference_usd=float(ledger.inference_usd[t]),
                ancillary_usd=float(ledger.ancillary_usd[t]),
                energy_usd=float(ledger.energy_usd[t]),
                flex_paused=prices_flex and not rules.serve_flex[t],
            ),
            [float(mw) for mw in decided.mining_mw[t]],
        )
        for t in range(first, len(market))
    ]


def mining_value(model: PowerModel, hashprice: float) -> list[float]:
    """USD per MWh into each ASIC group at `hashprice`."""
    return [
        float(energy.AsicGroup(g.model, 1, g.th_s or 0.0, g.watts or 0.0).usd_per_mwh(hashprice))
        for g in model.asics
    ]
