"""What sites run today, for comparison. Each serves inference as it arrives (inference
platforms ignore power) and differs in how it runs the ASICs; none offers flexibility to the
grid. Each reads only what it could know at the time, like the online policy."""

import numpy as np

from hashgrid.energy.demand import Demand
from hashgrid.energy.dispatch import Rules, dispatch
from hashgrid.energy.ledger import Dispatch
from hashgrid.energy.prices import Market, day_before
from hashgrid.energy.site import Site


def _rules(site: Site, mine: np.ndarray, nodes_always_on: bool = False) -> Rules:
    t_n = len(mine)
    return Rules(
        mine=np.broadcast_to(mine.reshape(t_n, -1), (t_n, len(site.asics))),
        serve_flex=np.ones(t_n, dtype=bool),
        offered_mw=np.zeros(t_n),
        nodes_always_on=nodes_always_on,
    )


def always_mine(site: Site, market: Market, demand: Demand) -> Dispatch:
    """Every ASIC runs on whatever power inference leaves, at any price."""
    return dispatch(site, demand, _rules(site, np.ones(len(market), dtype=bool)))


def price_threshold(site: Site, market: Market, demand: Demand, usd_per_mwh: float) -> Dispatch:
    """Foreman-style curtailment: ASICs sleep while the real-time price of the interval before
    exceeded a fixed threshold (the first interval mines)."""
    last = np.r_[-np.inf, market.rt[:-1]]
    return dispatch(site, demand, _rules(site, last <= usd_per_mwh))


def day_ahead_rule(site: Site, market: Market, demand: Demand) -> Dispatch:
    """Mine in intervals whose day-ahead price is below the group's breakeven at the hashprice of
    the day before."""
    value = site.mining_value(day_before(market.day, market.hashprice))
    return dispatch(site, demand, _rules(site, market.dam[:, None] < value))


def serve_first(site: Site, market: Market, demand: Demand) -> Dispatch:
    """An inference platform's habit: every GPU node stays on (as many as the budget carries
    beside its most firm work), ready for demand, and the ASICs mine on the rest of the budget,
    never curtailed."""
    return dispatch(site, demand, _rules(site, np.ones(len(market), dtype=bool), True))
