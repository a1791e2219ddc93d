"""Power planning, pure: per site and interval, MW to ASICs, GPU nodes running and MW offered to
the grid, from prices, hashprice and inference demand. No I/O: callers pass arrays in.

`plan_hindsight` (planner.py) is the linear programme that sees everything: the upper bound.
`plan_fleet_hindsight` (fleet_planner.py) does the same for many sites at once, routing their
inference demand between them within latency limits.
`plan_online` (online.py) decides each interval from what was known then. baselines.py holds
what sites run today. `settle` (ledger.py) prices any dispatch the same way. Every one keeps
the site's limits (site.py): the power budget, GPU nodes' minimum on-time, the ASIC ramp limit.
"""

from hashgrid.energy.baselines import always_mine, day_ahead_rule, price_threshold, serve_first
from hashgrid.energy.demand import Demand
from hashgrid.energy.dispatch import Rules, dispatch
from hashgrid.energy.fleet_planner import FleetDemand, FleetPlan, plan_fleet_hindsight
from hashgrid.energy.forecast import forecast_rt
from hashgrid.energy.ledger import Dispatch, Ledger, settle
from hashgrid.energy.online import OnlineConfig, commit_offer, online_rules, plan_online
from hashgrid.energy.planner import PlanError, plan_hindsight
from hashgrid.energy.prices import Market, day_before, tariff
from hashgrid.energy.site import AsicGroup, GpuFleet, Site

__all__ = [
    "AsicGroup",
    "Demand",
    "Dispatch",
    "FleetDemand",
    "FleetPlan",
    "GpuFleet",
    "Ledger",
    "Market",
    "OnlineConfig",
    "PlanError",
    "Rules",
    "Site",
    "always_mine",
    "commit_offer",
    "day_ahead_rule",
    "day_before",
    "dispatch",
    "forecast_rt",
    "online_rules",
    "plan_fleet_hindsight",
    "plan_hindsight",
    "plan_online",
    "price_threshold",
    "serve_first",
    "settle",
    "tariff",
]
