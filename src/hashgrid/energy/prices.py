"""Prices per interval, as the caller's arrays: what energy costs, what hashing and offered
flexibility pay. A fixed tariff or a time-of-use schedule is a market whose day-ahead and
real-time prices are the same known numbers and whose ancillary prices are zero."""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hashgrid.energy.site import Floats

Days = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Market:
    """T intervals of `interval_h` hours, in time order.

    `day` numbers the delivery day of each interval (non-decreasing; gaps allowed): day-ahead
    and ancillary prices are published once per day for the whole day, and hashprice is one
    figure per day, so what an online policy may know is stated in days.
    """

    interval_h: float
    day: Days
    rt: Floats  # real-time price, USD/MWh: what consumed energy is settled at
    dam: Floats  # day-ahead price, USD/MWh: known the day before delivery
    hashprice: Floats  # USD per PH/s per day, of the interval's day (known after the day)
    ancillary: Floats  # USD per MW-h of offered load reduction, cleared with the day-ahead market

    def __post_init__(self) -> None:
        n = len(self.day)
        if any(len(a) != n for a in (self.rt, self.dam, self.hashprice, self.ancillary)):
            raise ValueError("every price series needs one value per interval")
        if self.interval_h <= 0:
            raise ValueError("interval_h must be positive")
        if n and np.any(np.diff(self.day) < 0):
            raise ValueError("days must not go backwards")

    def __len__(self) -> int:
        return len(self.day)

    def intervals(self, hours: float) -> int:
        """How many whole intervals fit in `hours`."""
        return int(hours / self.interval_h + 1e-9)


def tariff(day: Days, usd_per_mwh: Floats, hashprice: Floats, interval_h: float = 1.0) -> Market:
    """A site that buys at known prices (fixed or time-of-use): nothing to forecast, no
    ancillary market."""
    prices = np.asarray(usd_per_mwh, dtype=np.float64)
    return Market(interval_h, day, prices, prices, hashprice, np.zeros(len(day)))


def day_before(day: Days, values: Floats, lag_days: int = 1) -> Floats:
    """For each interval, the value of the last interval of the day `lag_days` delivery days
    earlier (by number; the first day's own first value where there is none). This is how a
    daily figure such as hashprice is known: only once its day is over."""
    ends = np.flatnonzero(np.r_[day[1:] != day[:-1], True])  # last interval of each day
    end_days = day[ends]
    pos = np.searchsorted(end_days, day - lag_days, side="right") - 1
    out = np.where(pos >= 0, values[ends[np.maximum(pos, 0)]], values[0])
    return np.asarray(out, dtype=np.float64)
