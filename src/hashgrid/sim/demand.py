"""Requests offered per hour and client country: the trace's level tiled over the period with a
daily and weekly shape in each country's local time.

The Azure trace is one hour long, so it gives the level (requests per hour) and the tokens per
request, not a daily shape. The shape is an assumption, the same one `bench/energy_value.py`
uses: a cosine from 55% at 02:00 to 100% at 14:00 local time, weekends at 70%. Because each
country peaks in its own afternoon, demand follows the sun across sites.
"""

import numpy as np

from hashgrid.energy.prices import Days
from hashgrid.energy.site import Floats
from hashgrid.sim.model import DemandSpec

MARKET_UTC_OFFSET_H = -6  # hours of a market day are ERCOT's (Central Standard Time)
WEEKEND = 0.7


def daily_shape(local_hour: Floats, weekday: Floats) -> Floats:
    """Share of the peak load at a local hour (0-23, fractional allowed) and weekday (Monday 0)."""
    shape = 0.55 + 0.45 * (1 + np.cos((local_hour - 14) / 24 * 2 * np.pi)) / 2
    return np.asarray(shape * np.where(weekday >= 5, WEEKEND, 1.0), np.float64)


def weekday_of(day: Days) -> Floats:
    """Monday 0 .. Sunday 6 of day numbers counted from 1970-01-01 (a Thursday)."""
    return np.asarray((day + 3) % 7, np.float64)


def offered_requests(day: Days, demand: DemandSpec) -> Floats:
    """T x countries: requests offered in each market hour from each client country. `day`
    holds one day number per hour, 24 hours per day in order."""
    hour = np.arange(len(day)) % 24
    utc = hour[:, None] - MARKET_UTC_OFFSET_H
    local = utc + demand.clients.utc_offset_h[None, :]
    # A local hour past midnight (or before it) belongs to the next (or previous) local day.
    local_day = day[:, None] + np.floor_divide(local, 24)
    shape = daily_shape(np.mod(local, 24), weekday_of(local_day))
    return np.asarray(demand.peak_requests_h * demand.clients.weights[None, :] * shape, np.float64)
