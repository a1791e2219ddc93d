"""The fleet's hindsight plan: one linear programme over many sites that routes inference between
them as it powers each, with every price and all demand known (HiGHS). It is the upper bound for
a fleet whose demand is routed first and each site then planned on its own (the simulator, and
the control plane: the router sends requests, placement moves flex replicas off sites whose plan
pauses flex work), as `plan_hindsight` is for one site.

Demand comes from regions (client countries). Firm work is served in the interval it arrives, at
a site within the latency limit of its region (`FleetDemand.reach`), where one has room; flex
work from anywhere may go to any site and wait `flex_wait` intervals. Per site s and interval t,
with the variables and prices of planner.py (ASIC MW m per group, flex y served by age, offer a,
idle nodes kept on w) and x_r, the firm work of region r served there:

    max  sum_st dt * [ sum_g m (v - p) + q a + sum_k y (r_flex - b p) + sum_r x_r (r_firm - b p)
                       - i p w ]
    s.t. sum_g m + b (sum_k y + sum_r x_r) + i w <= budget        (power budget, per s, t)
         sum_k y + sum_r x_r + w <= nodes                         (GPU nodes, per s, t)
         a <= sum_g m,  a <= ancillary cap                        (only ASIC load backs an offer)
         sum_s x_rst <= firm_rt                                   (firm served once, per r, t)
         sum_s sum_k y_{s, t+k, k} <= flex_t                      (flex served once, per arrival)

Firm work earns far more per MWh than any use of its power (issue 6: about $2,700 against
mining's $100-140), so it is served wherever a site in reach has room; what none has room for
is lost, as in the simulator. The programme leaves out the minimum on-time and the ramp limit:
without them it can only earn more, so it stays an upper bound for a fleet that keeps them.
"""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.optimize import linprog

from hashgrid.energy.ledger import Dispatch
from hashgrid.energy.planner import PlanError
from hashgrid.energy.prices import Market
from hashgrid.energy.site import Floats, Site


@dataclass(frozen=True)
class FleetDemand:
    """Inference demand on a fleet, in busy GPU nodes per interval."""

    firm: Floats  # regions x T: busy nodes of firm work each region needs
    flex: Floats  # T: node-intervals of flex work arriving, from anywhere
    flex_wait: int  # intervals flex work may wait
    reach: npt.NDArray[np.bool_]  # regions x sites: the site is within the region's limit

    def __post_init__(self) -> None:
        if self.firm.ndim != 2 or self.firm.shape[1] != len(self.flex):
            raise ValueError("firm needs one row per region and one column per interval")
        if self.reach.shape[0] != self.firm.shape[0]:
            raise ValueError("reach needs one row per region")
        if self.flex_wait < 0 or np.any(self.firm < 0) or np.any(self.flex < 0):
            raise ValueError("demand and waits must not be negative")


@dataclass(frozen=True)
class FleetPlan:
    dispatches: tuple[Dispatch, ...]  # per site, in the order given
    firm_routed: Floats  # regions x sites x T: firm work of each region served at each site


def plan_fleet_hindsight(
    sites: tuple[Site, ...], markets: tuple[Market, ...], demand: FleetDemand
) -> FleetPlan:
    """The most profitable routing and dispatch of the fleet, everything known in advance."""
    s_n, t_n, k_n = len(sites), len(demand.flex), demand.flex_wait + 1
    if len(markets) != s_n or demand.reach.shape[1] != s_n:
        raise ValueError("one market and one reach column per site")
    if any(len(m) != t_n for m in markets):
        raise ValueError("every market needs the demand's intervals")
    pairs = np.argwhere(demand.reach & np.array([s.gpus.nodes > 0 for s in sites]))  # (r, s)
    region_of, site_of = pairs[:, 0], pairs[:, 1]

    # Per site, interval-major blocks: [m_t0 .. m_tG-1, y_t0 .. y_tK-1, a_t, w_t]; then the
    # firm routes x, pair-major, one per interval.
    widths = [len(s.asics) + k_n + 2 for s in sites]
    starts = np.concatenate([[0], np.cumsum([w * t_n for w in widths])])
    x0 = int(starts[-1])
    n = x0 + len(pairs) * t_n
    t_idx = np.arange(t_n)
    x_col = x0 + np.arange(len(pairs))[:, None] * t_n + t_idx  # pairs x T

    cost, upper = np.zeros(n), np.zeros(n)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    rhs: list[np.ndarray] = []
    row_count = 0

    def block(size: int) -> np.ndarray:
        """Open a block of `size` rows; their indices."""
        nonlocal row_count
        first = row_count
        row_count += size
        return np.arange(first, first + size)

    def add(row: np.ndarray, col: np.ndarray, val: float | np.ndarray) -> None:
        rows.append(np.broadcast_to(row, col.shape).ravel())
        cols.append(col.ravel())
        vals.append(np.broadcast_to(val, col.shape).ravel())

    arrived = t_idx[:, None] - np.arange(k_n)  # arrival interval of y_tk
    valid = arrived >= 0
    flex_rows = block(t_n)  # flex served once, per arrival
    rhs.append(np.asarray(demand.flex, np.float64))
    for s, (site, market) in enumerate(zip(sites, markets, strict=True)):
        g_n, width, gpus = len(site.asics), widths[s], site.gpus
        dt, p = market.interval_h, market.rt
        busy_mw, idle_mw = gpus.busy_kw / 1e3, gpus.idle_kw / 1e3
        base = int(starts[s]) + t_idx * width
        m_col = base[:, None] + np.arange(g_n)
        y_col = base[:, None] + g_n + np.arange(k_n)
        a_col, w_col = base + g_n + k_n, base + g_n + k_n + 1
        cost[m_col] = -dt * (site.mining_value(market.hashprice) - p[:, None])
        cost[y_col] = -dt * (gpus.flex_usd_per_node_hour - busy_mw * p)[:, None]
        cost[a_col] = -dt * market.ancillary
        cost[w_col] = dt * idle_mw * p
        upper[m_col] = site.asic_mw
        upper[y_col] = np.where(valid, np.inf, 0.0)
        upper[a_col] = site.ancillary_mw
        upper[w_col] = gpus.nodes
        here = site_of == s
        x_here = x_col[here]  # this site's routes x T
        cost[x_here] = -dt * (gpus.firm_usd_per_node_hour - busy_mw * p)
        upper[x_here] = np.inf

        budget = block(t_n)
        add(budget[:, None], m_col, 1.0)
        add(budget[:, None], y_col, busy_mw)
        add(budget, w_col, idle_mw)
        add(budget[None, :], x_here, busy_mw)
        rhs.append(np.full(t_n, site.budget_mw))
        nodes = block(t_n)
        add(nodes[:, None], y_col, 1.0)
        add(nodes, w_col, 1.0)
        add(nodes[None, :], x_here, 1.0)
        rhs.append(np.full(t_n, float(gpus.nodes)))
        offer = block(t_n)
        add(offer, a_col, 1.0)
        add(offer[:, None], m_col, -1.0)
        rhs.append(np.zeros(t_n))
        add(flex_rows[arrived[valid]], y_col[valid], 1.0)

    firm_rows = block(demand.firm.size).reshape(demand.firm.shape)  # regions x T
    add(firm_rows[region_of], x_col, 1.0)
    rhs.append(demand.firm.ravel())

    result = linprog(
        cost,
        A_ub=sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(row_count, n),
        ),
        b_ub=np.concatenate(rhs),
        bounds=np.column_stack([np.zeros(n), upper]),
        method="highs",
    )
    if result.status != 0:
        raise PlanError(result.message)
    x = np.maximum(result.x, 0.0)
    routed = np.zeros((demand.firm.shape[0], s_n, t_n))
    routed[region_of, site_of] = x[x_col]
    dispatches = []
    for s, site in enumerate(sites):
        g_n, width = len(site.asics), widths[s]
        base = int(starts[s]) + t_idx * width
        firm = routed[:, s].sum(axis=0)
        flex = x[base[:, None] + g_n + np.arange(k_n)].sum(axis=1)
        dispatches.append(
            Dispatch(
                mining_mw=x[base[:, None] + np.arange(g_n)],
                nodes_on=firm + flex + x[base + g_n + k_n + 1],
                firm_served=firm,
                flex_served=flex,
                offered_mw=x[base + g_n + k_n],
            )
        )
    return FleetPlan(tuple(dispatches), routed)
