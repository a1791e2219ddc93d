"""The online policy: each decision uses only what was known when it was taken.

What is known, and when (ERCOT; a tariff site knows its prices outright):
- Day-ahead prices and ancillary-service prices of delivery day D clear around 13:30 on day
  D-1. The grid offer for day D is committed then, so it may read them, the real-time prices of
  days up to D-2 (a conservative cut of what has settled by that afternoon) and the hashprice of
  day D-2 (the last whole day).
- Real-time decisions in interval t (ASIC power, which flex work runs) read the day-ahead price
  of t, the real-time prices of intervals before t, and the hashprice of the day before t's day.
  ERCOT's SCED publishes 5-minute prices within the interval; a controller reacting to them
  (ASICs follow in seconds) could do better, but hourly data cannot show it, so this policy is
  not credited with it: it never sees the price of the interval it decides.
- Inference demand is served as it arrives; no future demand is read. The offer leaves room for
  every GPU node at full power, so it needs no demand forecast.

Decisions:
- Mine with group g in t when forecast_rt(t) < the group's value per MWh (forecast.py).
- Serve flex work now when a node-hour of it earns more than its power would cost or earn in
  mining; otherwise hold it until its deadline.
- Offer the grid a group's MW in t when the ancillary price beats the expected cost of being
  unable to curtail: E[max(rt - v, 0)], the real-time price estimated as the day-ahead price
  plus a spread drawn from the last `residual_days` of known spreads. The offered load must
  keep running through a price spike, and this is what that costs on average.

Limits (site.py): the decisions go through `dispatch`, which keeps the GPU nodes' minimum
on-time (a node started for a peak stays on, idle, until it has passed) and the ASIC ramp limit
(mining steps towards what the rules want by at most the limit per interval, and the committed
offer falls short where mining cannot reach it in time). The rules do not plan around them
(that would take forecasts of demand and prices hours ahead); with the benchmark's smooth daily
demand they cost little (bench/energy_value.py).
"""

from dataclasses import dataclass

import numpy as np

from hashgrid.energy.demand import Demand
from hashgrid.energy.dispatch import Rules, dispatch
from hashgrid.energy.forecast import forecast_rt
from hashgrid.energy.ledger import Dispatch
from hashgrid.energy.prices import Market, day_before
from hashgrid.energy.site import Floats, Site


@dataclass(frozen=True, slots=True)
class OnlineConfig:
    spread_window_h: float = 720.0  # history the spread slope is fitted on
    spread_clip: float = 50.0  # USD/MWh: spreads beyond this count as this in the fit
    residual_days: int = 30  # days of spreads the offer's expected cost is estimated from


def commit_offer(site: Site, market: Market, config: OnlineConfig) -> Floats:
    """MW offered to the grid per interval, decided the day before delivery (module docstring)."""
    offered = np.zeros(len(market))
    most = min(site.ancillary_mw, site.budget_mw - site.gpus.busy_mw, float(site.asic_mw.sum()))
    if most <= 0:
        return offered
    value = site.mining_value(day_before(market.day, market.hashprice, lag_days=2))
    spread = market.rt - market.dam
    for d in np.unique(market.day):
        now = np.flatnonzero(market.day == d)
        known = (market.day <= d - 2) & (market.day > d - 2 - config.residual_days)
        if not known.any():
            continue  # nothing learnt yet: commit nothing
        rt = market.dam[now, None] + spread[known][None, :]  # scenarios per interval
        left = np.full(len(now), most)
        for g in site.by_efficiency():
            loss = np.maximum(rt - value[now, g, None], 0.0).mean(axis=1)
            take = np.where(market.ancillary[now] > loss, np.minimum(site.asic_mw[g], left), 0.0)
            offered[now] += take
            left -= take
    return offered


def online_rules(site: Site, market: Market, config: OnlineConfig | None = None) -> Rules:
    """The online policy's decisions per interval, each from what was known before it (module
    docstring). They do not read demand: whether flex work is worth running here in an interval
    holds however much of it there is."""
    config = config or OnlineConfig()
    price = forecast_rt(market, config.spread_window_h, config.spread_clip)
    value = site.mining_value(day_before(market.day, market.hashprice))
    mine = price[:, None] < value
    mining_best = np.max(np.where(mine, value, 0.0), axis=1, initial=0.0)
    flex_usd_per_mwh = site.gpus.flex_usd_per_node_hour / (site.gpus.busy_kw / 1e3)
    return Rules(
        mine=mine,
        serve_flex=flex_usd_per_mwh > np.maximum(price, mining_best),
        offered_mw=commit_offer(site, market, config),
    )


def plan_online(
    site: Site, market: Market, demand: Demand, config: OnlineConfig | None = None
) -> Dispatch:
    """The online dispatch over the market's intervals, each decided without looking ahead."""
    return dispatch(site, demand, online_rules(site, market, config))
