"""The hindsight plan: one linear programme over the whole horizon, solved with HiGHS, that
sees every real-time price, hashprice and demand in advance. No policy can earn more on the
same site and prices, so it is the yardstick the online policy and the baselines are measured
against.

Per interval t, with dt hours, real-time price p, ASIC value v_g per MWh (hashprice of the
day), flex revenue r per node-hour, node power b (MW), ancillary price q:

    max  sum_t dt * [ sum_g m_tg (v_tg - p_t) + q_t a_t + sum_k y_tk (r - b p_t) ]
    s.t. sum_g m_tg + b sum_k y_tk <= budget - b firm_t       (power budget)
         sum_k y_tk <= nodes - firm_t                          (GPU nodes)
         a_t <= sum_g m_tg,  a_t <= ancillary cap              (only ASIC load backs an offer)
         sum_k y_{s+k,k} <= flex_s  for each arrival s         (flex served once, k <= wait)
         0 <= m_tg <= MW of group g

where y_tk is flex work served at t that arrived at t - k. Firm work is served as it arrives
(capped at what the site can serve); its revenue and power are constants. Nodes run only while
busy: an idle node only costs. The plan is continuous (nodes as a fractional count), which is
exact for the money at hourly resolution, where whole-node rounding moves a few kW.
"""

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from hashgrid.energy.demand import Demand
from hashgrid.energy.ledger import Dispatch
from hashgrid.energy.prices import Market
from hashgrid.energy.site import Site


class PlanError(RuntimeError):
    """HiGHS found no optimal plan (it should not: doing nothing is always feasible)."""


def plan_hindsight(site: Site, market: Market, demand: Demand) -> Dispatch:
    """The most profitable dispatch with every price and demand known in advance."""
    t_n, g_n, k_n = len(market), len(site.asics), demand.flex_wait + 1
    if len(demand) != t_n:
        raise ValueError("demand and market need the same intervals")
    dt, p = market.interval_h, market.rt
    node_mw = site.gpus.busy_kw / 1e3
    firm = site.servable_firm(demand.firm)

    # Variable layout, interval-major: [m_t0 .. m_tG-1, y_t0 .. y_tK-1, a_t] per interval.
    width = g_n + k_n + 1
    t_idx = np.arange(t_n)
    m_col = t_idx[:, None] * width + np.arange(g_n)
    y_col = t_idx[:, None] * width + g_n + np.arange(k_n)
    a_col = t_idx * width + g_n + k_n
    cost = np.zeros(t_n * width)
    cost[m_col] = -dt * (site.mining_value(market.hashprice) - p[:, None])
    cost[y_col] = -dt * (site.gpus.flex_usd_per_node_hour - node_mw * p)[:, None]
    cost[a_col] = -dt * market.ancillary

    upper = np.zeros(t_n * width)
    upper[m_col] = site.asic_mw
    arrived = t_idx[:, None] - np.arange(k_n)  # arrival interval of y_tk
    upper[y_col] = np.where(arrived >= 0, np.inf, 0.0)
    upper[a_col] = site.ancillary_mw

    rows, cols, vals, rhs = [], [], [], []

    def add(row: np.ndarray, col: np.ndarray, val: float | np.ndarray) -> None:
        rows.append(row.ravel())
        cols.append(col.ravel())
        vals.append(np.broadcast_to(val, col.shape).ravel())

    budget, nodes, shed, flex = 0, t_n, 2 * t_n, 3 * t_n  # first row of each block
    add(budget + np.repeat(t_idx, g_n), m_col, 1.0)
    add(budget + np.repeat(t_idx, k_n), y_col, node_mw)
    rhs.append(np.maximum(site.budget_mw - node_mw * firm, 0.0))
    add(nodes + np.repeat(t_idx, k_n), y_col, 1.0)
    rhs.append(np.maximum(site.gpus.nodes - firm, 0.0))
    add(shed + t_idx, a_col, 1.0)
    add(shed + np.repeat(t_idx, g_n), m_col, -1.0)
    rhs.append(np.zeros(t_n))
    valid = arrived >= 0
    add(flex + arrived[valid], y_col[valid], 1.0)
    rhs.append(np.asarray(demand.flex, np.float64))

    a_ub = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(4 * t_n, t_n * width),
    )
    result = linprog(
        cost,
        A_ub=a_ub,
        b_ub=np.concatenate(rhs),
        bounds=np.column_stack([np.zeros(t_n * width), upper]),
        method="highs",
    )
    if result.status != 0:
        raise PlanError(result.message)
    x = np.maximum(result.x, 0.0)  # HiGHS may return -1e-12 for a zero
    flex_served = x[y_col].sum(axis=1)
    return Dispatch(
        mining_mw=x[m_col],
        nodes_on=firm + flex_served,
        firm_served=firm,
        flex_served=flex_served,
        offered_mw=x[a_col],
    )
