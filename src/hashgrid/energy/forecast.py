"""The real-time price of an interval, forecast from what is known when it starts: its
day-ahead price and the real-time prices of intervals already over.

    forecast_t = dam_t + beta_t * s_{t-1},   s = clip(rt - dam, +-clip)

The spread between real-time and day-ahead prices persists from one interval to the next (a
congested line, a wind shortfall, a plant trip last for hours), so the last spread corrects
today's day-ahead price. beta_t is the least-squares slope of s_i on s_{i-1} over the `window`
intervals before t, clipped to [0, 1]; spreads are clipped first so that one scarcity hour at
$5,000 does not set the slope for a month. Nothing at or after t is read.
"""

import numpy as np

from hashgrid.energy.prices import Market
from hashgrid.energy.site import Floats


def spread_slope(spread: Floats, window: int) -> Floats:
    """beta_t for every t from pairs (s_{i-1}, s_i) with t - window <= i <= t - 1."""
    pairs_xy = np.r_[0.0, spread[:-1] * spread[1:]]  # index i holds s_{i-1} * s_i
    pairs_xx = np.r_[0.0, spread[:-1] ** 2]
    sum_xy = np.r_[0.0, np.cumsum(pairs_xy)]  # sum_xy[j] = sum over i < j
    sum_xx = np.r_[0.0, np.cumsum(pairs_xx)]
    t = np.arange(len(spread))
    lo = np.maximum(t - window, 0)
    xy = sum_xy[t] - sum_xy[lo]
    xx = sum_xx[t] - sum_xx[lo]
    beta = np.divide(xy, xx, out=np.zeros(len(spread)), where=xx > 0)
    return np.asarray(np.clip(beta, 0.0, 1.0), np.float64)


def forecast_rt(market: Market, window_h: float = 720.0, clip: float = 50.0) -> Floats:
    """Forecast real-time price per interval (see the module docstring)."""
    spread = np.clip(market.rt - market.dam, -clip, clip)
    beta = spread_slope(spread, market.intervals(window_h))
    last = np.r_[0.0, spread[:-1]]  # the spread of the interval before; none before the first
    return np.asarray(market.dam + beta * last, np.float64)
