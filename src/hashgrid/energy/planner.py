"""The hindsight plan: one linear programme over the whole horizon, solved with HiGHS, that
sees every real-time price, hashprice and demand in advance. No policy can earn more on the
same site and prices, so it is the yardstick the online policy and the baselines are measured
against.

Per interval t, with dt hours, real-time price p, ASIC value v_g per MWh (hashprice of the
day), flex revenue r per node-hour, node power b busy and i idle (MW), ancillary price q:

    max  sum_t dt * [ sum_g m_tg (v_tg - p_t) + q_t a_t + sum_k y_tk (r - b p_t) - i p_t w_t ]
    s.t. sum_g m_tg + b sum_k y_tk + i w_t <= budget - b firm_t   (power budget)
         u_t = firm_t + sum_k y_tk + w_t <= nodes                  (GPU nodes on)
         s_t >= u_t - u_{t-1},  u_{-1} = 0                         (nodes started)
         u_t >= sum_{tau = t-U+1 .. t} s_tau                       (minimum on-time, U intervals)
         -R - f_t <= sum_g (m_tg - m_{t-1,g}) <= R   for t >= 1    (ASIC ramp limit, R MW)
         a_t <= sum_g m_tg,  a_t <= ancillary cap                  (only ASIC load backs an offer)
         sum_k y_{s+k,k} <= flex_s  for each arrival s             (flex served once, k <= wait)
         0 <= m_tg <= MW of group g,  w_t >= 0,  s_t >= 0

where y_tk is flex work served at t that arrived at t - k, w_t the idle nodes kept on, u_t the
nodes on and s_t the nodes started. Firm work is served as it arrives (capped at what the site
can serve); its revenue and busy power are constants, and f_t, the busy power of its growth into
t, is how much further than R the ASIC load may fall when it grows (`Site.asic_fall_mw`):
customers' work does not wait for a ramp. The rows of the minimum on-time are left out when
U = 1, and those of the ramp limit when the site has none: there they bind nothing.

An idle node only costs, so one stays on only while its minimum on-time holds it, or where a
negative price pays for power that no miner can take (as serve-first's idle nodes are paid).
The plan is continuous: nodes are a fractional count and the minimum on-time binds the count
(the aggregated relaxation of unit commitment), which is exact for the money at hourly
resolution, where whole-node rounding moves a few kW.
"""

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from hashgrid.energy.demand import Demand
from hashgrid.energy.ledger import Dispatch
from hashgrid.energy.prices import Market
from hashgrid.energy.site import Site


class PlanError(RuntimeError):
    """HiGHS found no optimal plan (it should not: mining nothing, serving firm work only and
    keeping its nodes on for their minimum on-time is always feasible)."""


def plan_hindsight(site: Site, market: Market, demand: Demand) -> Dispatch:
    """The most profitable dispatch with every price and demand known in advance."""
    t_n, g_n, k_n = len(market), len(site.asics), demand.flex_wait + 1
    if len(demand) != t_n:
        raise ValueError("demand and market need the same intervals")
    dt, p, gpus = market.interval_h, market.rt, site.gpus
    busy_mw, idle_mw = gpus.busy_kw / 1e3, gpus.idle_kw / 1e3
    firm = site.servable_firm(demand.firm)

    # Variable layout, interval-major: [m_t0 .. m_tG-1, y_t0 .. y_tK-1, a_t, w_t, s_t], where
    # w_t counts idle nodes on, so that nodes on are u_t = firm_t + sum_k y_tk + w_t.
    width = g_n + k_n + 3
    t_idx = np.arange(t_n)
    m_col = t_idx[:, None] * width + np.arange(g_n)
    y_col = t_idx[:, None] * width + g_n + np.arange(k_n)
    a_col, w_col, s_col = (t_idx * width + g_n + k_n + i for i in range(3))
    cost = np.zeros(t_n * width)
    cost[m_col] = -dt * (site.mining_value(market.hashprice) - p[:, None])
    cost[y_col] = -dt * (gpus.flex_usd_per_node_hour - busy_mw * p)[:, None]
    cost[a_col] = -dt * market.ancillary
    cost[w_col] = dt * idle_mw * p

    upper = np.zeros(t_n * width)
    upper[m_col] = site.asic_mw
    arrived = t_idx[:, None] - np.arange(k_n)  # arrival interval of y_tk
    upper[y_col] = np.where(arrived >= 0, np.inf, 0.0)
    upper[a_col] = site.ancillary_mw
    upper[w_col] = upper[s_col] = gpus.nodes

    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    rhs: list[np.ndarray] = []

    def add(row: np.ndarray, col: np.ndarray, val: float | np.ndarray) -> None:
        """Coefficients of the block of rows being built; `row` counts from its first row."""
        rows.append(row.ravel() + sum(len(b) for b in rhs))
        cols.append(col.ravel())
        vals.append(np.broadcast_to(val, col.shape).ravel())

    def add_on(row: np.ndarray, t: np.ndarray, sign: float) -> None:
        """sign * (nodes on in intervals t, less their firm work) into `row`."""
        add(np.repeat(row, k_n), y_col[t], sign)
        add(row, w_col[t], sign)

    per_group = np.repeat(t_idx, g_n)
    add(per_group, m_col, 1.0)  # power budget
    add(np.repeat(t_idx, k_n), y_col, busy_mw)
    add(t_idx, w_col, idle_mw)
    rhs.append(np.maximum(site.budget_mw - busy_mw * firm, 0.0))
    add_on(t_idx, t_idx, 1.0)  # GPU nodes
    rhs.append(np.maximum(gpus.nodes - firm, 0.0))
    add(t_idx, a_col, 1.0)  # only ASIC load backs an offer
    add(per_group, m_col, -1.0)
    rhs.append(np.zeros(t_n))
    valid = arrived >= 0  # flex served once
    add(arrived[valid], y_col[valid], 1.0)
    rhs.append(np.asarray(demand.flex, np.float64))
    if gpus.min_on_intervals > 1:
        add_on(t_idx, t_idx, 1.0)  # nodes started
        add_on(t_idx[1:], t_idx[:-1], -1.0)
        add(t_idx, s_col, -1.0)
        rhs.append(-np.diff(firm, prepend=0.0))
        for lag in range(min(gpus.min_on_intervals, t_n)):  # minimum on-time
            add(t_idx[lag:], s_col[: t_n - lag], 1.0)
        add_on(t_idx, t_idx, -1.0)
        rhs.append(firm)
    if site.asic_ramp_mw is not None and t_n > 1:  # ramp limit, up then down
        step = np.repeat(t_idx[:-1], g_n)
        add(step, m_col[1:], 1.0)
        add(step, m_col[:-1], -1.0)
        rhs.append(np.full(t_n - 1, site.asic_ramp_mw))
        add(step, m_col[1:], -1.0)
        add(step, m_col[:-1], 1.0)
        rhs.append(site.asic_fall_mw(firm)[1:])

    b_ub = np.concatenate(rhs)
    a_ub = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(b_ub), t_n * width),
    )
    result = linprog(
        cost,
        A_ub=a_ub,
        b_ub=b_ub,
        bounds=np.column_stack([np.zeros(t_n * width), upper]),
        method="highs",
    )
    if result.status != 0:
        raise PlanError(result.message)
    x = np.maximum(result.x, 0.0)  # HiGHS may return -1e-12 for a zero
    flex_served = x[y_col].sum(axis=1)
    return Dispatch(
        mining_mw=x[m_col],
        nodes_on=firm + flex_served + x[w_col],
        firm_served=firm,
        flex_served=flex_served,
        offered_mw=x[a_col],
    )
