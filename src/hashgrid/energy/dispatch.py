"""Turning per-interval rules into a dispatch, in the order power is given out on a site:
firm inference first (customers wait on it), then the ASIC load committed to the grid, then flex
inference, then the miners the rules let run, most efficient first. The online policy and every
baseline differ only in their `Rules`; this one function applies them, so differences in their
figures come from their decisions and nothing else.
"""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hashgrid.energy.demand import Demand
from hashgrid.energy.ledger import Dispatch
from hashgrid.energy.site import Floats, Site

Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Rules:
    mine: Bools  # T x groups: whether group g may mine in interval t
    serve_flex: Bools  # T: serve waiting flex work now; if False only work at its deadline runs
    offered_mw: Floats  # T: ASIC load committed to the grid; at least this much keeps running
    nodes_always_on: bool = False  # keep every GPU node on, busy or not


def serve_flex(site: Site, demand: Demand, firm: Floats, rules: Rules) -> Floats:
    """Busy nodes serving flex work per interval: oldest work first, within free nodes and the
    budget left after firm work, idle nodes kept on and the committed offer; work past its wait
    is dropped."""
    gpus = site.gpus
    base_mw = site.gpu_mw(
        np.full(len(firm), float(gpus.nodes)) if rules.nodes_always_on else firm, firm
    )
    node_mw = (gpus.busy_kw - (gpus.idle_kw if rules.nodes_always_on else 0.0)) / 1e3
    free_mw = np.maximum(site.budget_mw - rules.offered_mw - base_mw, 0.0)
    room = np.minimum(gpus.nodes - firm, free_mw / node_mw if node_mw > 0 else np.inf)
    waiting = np.zeros(demand.flex_wait + 1)  # by age in intervals, 0 = arrived now
    served = np.zeros(len(demand))
    for t in range(len(demand)):
        waiting = np.roll(waiting, 1)
        waiting[0] = demand.flex[t]  # the oldest, rolled round to age 0, has expired
        ready = waiting.sum() if rules.serve_flex[t] else waiting[-1]
        left = min(ready, room[t])
        served[t] = left
        for age in range(len(waiting) - 1, -1, -1):
            take = min(waiting[age], left)
            waiting[age] -= take
            left -= take
    return served


def dispatch(site: Site, demand: Demand, rules: Rules) -> Dispatch:
    """Apply `rules` interval by interval (see the module docstring for the order)."""
    firm = site.servable_firm(demand.firm)
    flex = serve_flex(site, demand, firm, rules)
    busy = firm + flex
    nodes_on = busy
    if rules.nodes_always_on and site.gpus.idle_kw > 0:  # as many on as the budget carries
        extra = (site.gpus.busy_kw - site.gpus.idle_kw) / 1e3
        carried = (site.budget_mw - busy * extra) / (site.gpus.idle_kw / 1e3)
        nodes_on = np.clip(carried, busy, site.gpus.nodes)
    elif rules.nodes_always_on:
        nodes_on = np.full(len(demand), float(site.gpus.nodes))
    left = np.maximum(site.budget_mw - site.gpu_mw(nodes_on, busy), 0.0)

    caps = site.asic_mw
    mining = np.zeros((len(demand), len(site.asics)))
    short = np.minimum(rules.offered_mw, left)  # committed load runs whatever the rules say
    for g in site.by_efficiency():
        mining[:, g] = np.minimum(np.where(rules.mine[:, g], caps[g], 0.0), left)
        left -= mining[:, g]
    short = np.maximum(short - mining.sum(axis=1), 0.0)
    for g in site.by_efficiency():
        top_up = np.minimum(caps[g] - mining[:, g], short)
        mining[:, g] += top_up
        short -= top_up
    offered = np.minimum(rules.offered_mw, mining.sum(axis=1))
    return Dispatch(mining, nodes_on, firm, flex, offered)
