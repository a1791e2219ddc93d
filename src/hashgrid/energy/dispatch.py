"""Turning per-interval rules into a dispatch, interval by interval, in the order power is given
out on a site: firm inference first (customers wait on it), then the GPU nodes that must stay on
(a node started stays on for its minimum on-time, idle if it has no work), then the ASIC load
committed to the grid and the least the ramp limit lets the ASICs fall to, then flex inference,
then the miners the rules let run, most efficient first, topped up to the committed load and
the ramp's floor and cut to its ceiling (least efficient first). The online policy and every
baseline differ only in their `Rules`; this one function applies them, so differences in their
figures come from their decisions and nothing else.

Every dispatch keeps the site's limits (site.py): the budget, the nodes, their minimum on-time
and the ASIC ramp limit. The ramp's floor always fits in the budget: nodes held on are never
more than were busy when they started, and where firm work grows the ASIC load may fall by its
power. The ramp steps from the ASIC load of the interval before, as dispatched, or as actually
drawn where the caller knows better (`drawn_mw`: a control plane knows what it ordered, say
under a curtailment, which is obeyed whatever the plan).
"""

from collections.abc import Mapping, Sequence
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
    nodes_always_on: bool = False  # keep every GPU node on that the budget carries, busy or not


def _count(mw: float, node_mw: float) -> float:
    """Nodes that `mw` powers at `node_mw` each (any number when they draw nothing)."""
    if node_mw > 0:
        return mw / node_mw
    return np.inf if mw >= 0 else 0.0


def _always_on_nodes(site: Site) -> float:
    """Nodes kept on by a serve-first site: all of them, or as many as its budget powers idle
    beside the most firm work it can serve, so that they never need to stop."""
    gpus = site.gpus
    firm = float(site.servable_firm(np.array([np.inf]))[0])
    extra = (gpus.busy_kw - gpus.idle_kw) / 1e3
    return min(float(gpus.nodes), _count(site.budget_mw - extra * firm, gpus.idle_kw / 1e3))


def _serve(waiting: list[float], room: float, all_ready: bool) -> float:
    """Serve flex work waiting by age (index 0 arrived now), oldest first, within `room`; only
    the oldest is ready unless `all_ready`. Returns the work served."""
    left = min(sum(waiting) if all_ready else waiting[-1], room)
    served = left
    for age in range(len(waiting) - 1, -1, -1):
        take = min(waiting[age], left)
        waiting[age] -= take
        left -= take
    return served


def _adjust(mining: list[float], caps: Sequence[float], total: float) -> None:
    """Raise the groups' MW (in efficiency order) to `total`, most efficient first, or cut it,
    least efficient first."""
    gap = total - sum(mining)
    for g in range(len(mining)) if gap > 0 else range(len(mining) - 1, -1, -1):
        step = min(caps[g] - mining[g], gap) if gap > 0 else max(-mining[g], gap)
        mining[g] += step
        gap -= step


def dispatch(
    site: Site, demand: Demand, rules: Rules, drawn_mw: Mapping[int, float] | None = None
) -> Dispatch:
    """Apply `rules` interval by interval (see the module docstring for the order); `drawn_mw`
    is the ASIC load actually drawn in some intervals, which the ramp limit steps from."""
    gpus, t_n, order = site.gpus, len(demand), site.by_efficiency()
    busy_mw, idle_mw = gpus.busy_kw / 1e3, gpus.idle_kw / 1e3
    firm = site.servable_firm(demand.firm)
    caps = site.asic_mw[order].tolist()
    wanted = np.where(rules.mine, site.asic_mw, 0.0)[:, order].tolist()
    fall = site.asic_fall_mw(firm).tolist()
    rise = np.inf if site.asic_ramp_mw is None else site.asic_ramp_mw
    serve_now = rules.serve_flex.tolist()
    kept = _always_on_nodes(site) if rules.nodes_always_on else 0.0

    flex, nodes_on = np.zeros(t_n), np.zeros(t_n)
    mining = np.zeros((t_n, len(caps)))
    waiting = [0.0] * (demand.flex_wait + 1)  # flex work by age, 0 = arrived now
    starts: list[float] = []
    on, mined = 0.0, 0.0  # nodes on and ASIC MW in the interval before
    each = zip(firm.tolist(), demand.flex.tolist(), rules.offered_mw.tolist(), strict=True)
    for t, (f, arrived, offer) in enumerate(each):
        held = max(kept, sum(starts[max(t - gpus.min_on_intervals + 1, 0) :]))
        low = max(mined - fall[t], 0.0) if t else 0.0
        high = mined + rise if t else np.inf
        # b busy nodes with `held` on draw max(busy_mw b, idle_mw held + (busy - idle) b)
        free = site.budget_mw - max(offer, low)
        most = min(_count(free, busy_mw), _count(free - idle_mw * held, busy_mw - idle_mw))
        waiting = [arrived, *waiting[:-1]]  # the oldest has expired
        flex[t] = _serve(waiting, min(max(most - f, 0.0), gpus.nodes - f), serve_now[t])
        busy = f + flex[t]
        nodes_on[t] = max(busy, held)
        starts.append(max(nodes_on[t] - on, 0.0))
        on = nodes_on[t]
        left = max(site.budget_mw - idle_mw * on - (busy_mw - idle_mw) * busy, 0.0)

        row, room = [], left
        for want in wanted[t]:
            row.append(min(want, room))
            room -= row[-1]
        _adjust(row, caps, min(max(sum(row), offer, low), high, left))
        mining[t, order] = row
        mined = drawn_mw[t] if drawn_mw and t in drawn_mw else sum(row)
    offered = np.minimum(rules.offered_mw, mining.sum(axis=1))
    return Dispatch(mining, nodes_on, firm, flex, offered)
