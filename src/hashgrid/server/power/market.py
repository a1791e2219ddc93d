"""A site's prices, hashprice and ancillary prices as the pure planner's `Market`, from its
stored sources.

Intervals are UTC hours, or UTC quarter hours for a site whose price series has a row every 15
minutes (`PowerModel.interval`). An ERCOT file's delivery dates and hours ending are Central
prevailing time, converted to UTC as read (`energy_data.read_ercot_utc`), so a price (energy or
ancillary) applies to the interval it was set for, across daylight saving changes too.
Ancillary prices are hourly (ERCOT's products are), so each quarter hour takes its hour's.
Days (for the hashprice and the planner's day-ahead information) are UTC days.
"""

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np

from hashgrid.contracts.api.power import (
    ConstantAncillary,
    ConstantHashprice,
    ErcotAncillary,
    ErcotSeries,
    FixedPrice,
    GridOffer,
    HashpriceSource,
    PowerModel,
    PriceSource,
    TimeOfUse,
)
from hashgrid.energy import Market
from hashgrid.energy.prices import Days
from hashgrid.energy_data import day_number, price_columns, read_ercot_utc, read_hashprice
from hashgrid.server.errors import Invalid

# The online policy fits the real-time/day-ahead spread on the last 30 days of known prices;
# a plan reads a day more so the first interval it decides has all of them.
HISTORY_H = 31 * 24
HOUR = timedelta(hours=1)

ErcotSeriesRows = dict[datetime, tuple[float, ...]]  # the columns asked for, by UTC start


def interval_of(t: datetime, step: timedelta = HOUR) -> datetime:
    """The start of the UTC interval of length `step` (an hour or a part of one) holding `t`."""
    t = t.astimezone(UTC)
    hour = t.replace(minute=0, second=0, microsecond=0)
    return hour + (t - hour) // step * step


def history(step: timedelta) -> int:
    """Intervals of `step` in the HISTORY_H hours a plan reads before its first interval."""
    return HISTORY_H * HOUR // step


def interval_starts(model: PowerModel, start: datetime, count: int) -> list[datetime]:
    """The starts of the site's intervals (`PowerModel.interval`) from HISTORY_H hours before
    `start` (an interval's start) up to `count` intervals after it."""
    step = model.interval
    return [start + i * step for i in range(-history(step), count)]


def site_market(model: PowerModel, start: datetime, count: int) -> Market:
    """The site's market over `interval_starts(model, start, count)`; raises `Invalid` when a
    source has no figure for one of them."""
    step = model.interval
    times = interval_starts(model, start, count)
    day: Days = np.array([day_number(t.date().isoformat()) for t in times], dtype=np.int64)
    dam, rt = _prices(model.price, times)
    return Market(
        interval_h=step / HOUR,
        day=day,
        rt=rt,
        dam=dam,
        hashprice=_hashprice(model.hashprice, day),
        ancillary=_ancillary(model.ancillary, times),
    )


def check_sources(model: PowerModel) -> None:
    """Raise `Invalid` when a source names a file that cannot be read as its layout."""
    try:
        if isinstance(model.price, ErcotSeries):
            rows = _ercot(model.price.path, price_columns(model.price.point))
            quarters = any(t.minute for t in rows)
            if quarters != (model.price.interval_min == 15):
                every = "15 minutes" if quarters else "hour"
                raise Invalid(
                    f"the price series has a row every {every}: give interval_min "
                    f"{15 if quarters else 60}"
                )
        if not isinstance(model.hashprice, ConstantHashprice):
            _hashprice_series(model.hashprice.path)
        if model.ancillary is not None and isinstance(model.ancillary.price, ErcotAncillary):
            _ercot(model.ancillary.price.path, (model.ancillary.price.product,))
    except (OSError, KeyError, ValueError) as e:
        raise Invalid(f"cannot read the site's series: {type(e).__name__}: {e}") from None


def _prices(source: PriceSource, times: list[datetime]) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(source, FixedPrice):
        flat = np.full(len(times), source.usd_per_mwh)
        return flat, flat
    if isinstance(source, TimeOfUse):
        by_hour = np.array([source.usd_per_mwh[t.hour] for t in times])
        return by_hour, by_hour
    both = _rows(_ercot(source.path, price_columns(source.point)), times, f"{source.point} price")
    return both[:, 0], both[:, 1]


def _ancillary(offer: GridOffer | None, times: list[datetime]) -> np.ndarray:
    if offer is None:
        return np.zeros(len(times))  # the site offers nothing
    if isinstance(offer.price, ConstantAncillary):
        return np.full(len(times), offer.price.usd_per_mw_h)
    product = offer.price.product
    hours = [interval_of(t) for t in times]  # hourly products
    return _rows(_ercot(offer.price.path, (product,)), hours, f"{product} price")[:, 0]


def _rows(series: ErcotSeriesRows, times: list[datetime], what: str) -> np.ndarray:
    """The series' figures at `times`; raises `Invalid` when it lacks one."""
    missing = [t for t in times if t not in series]
    if missing:
        raise Invalid(
            f"the series has no {what} for {missing[0]:%Y-%m-%d %H:%M} UTC "
            f"({len(missing)} of the {len(times)} intervals needed, the last 31 days included)"
        )
    return np.array([series[t] for t in times])


def _hashprice(source: HashpriceSource, day: Days) -> np.ndarray:
    if isinstance(source, ConstantHashprice):
        return np.full(len(day), source.usd_per_ph_day)
    days, values = _hashprice_series(source.path)
    # The last figure on or before each day: past the series' end it is carried forward.
    pos = np.searchsorted(days, day, side="right") - 1
    if np.any(pos < 0):
        raise Invalid("the hashprice series begins after the hours the plan needs")
    return values[pos]


def _stamp(path: str) -> tuple[str, int]:
    return path, Path(path).stat().st_mtime_ns


def _ercot(path: str, columns: tuple[str, ...]) -> ErcotSeriesRows:
    return _read_ercot(*_stamp(path), columns)


def _hashprice_series(path: str) -> tuple[np.ndarray, np.ndarray]:
    return _read_hashprice(*_stamp(path))


# Read once per file version: the reconciler plans every site every pass.
@lru_cache(maxsize=16)
def _read_ercot(path: str, _mtime_ns: int, columns: tuple[str, ...]) -> ErcotSeriesRows:
    return read_ercot_utc(Path(path), columns)


@lru_cache(maxsize=16)
def _read_hashprice(path: str, _mtime_ns: int) -> tuple[np.ndarray, np.ndarray]:
    series = sorted(read_hashprice(Path(path)).items())
    if not series:
        raise ValueError("no rows")
    return np.array([d for d, _ in series]), np.array([v for _, v in series])


def prices_at(model: PowerModel, t: datetime) -> tuple[float, float]:
    """The real-time price (USD/MWh) and hashprice (USD/PH/day) of the interval holding `t`;
    raises `Invalid` when a source lacks it."""
    start = interval_of(t, model.interval)
    day: Days = np.array([day_number(start.date().isoformat())], dtype=np.int64)
    _, rt = _prices(model.price, [start])
    return float(rt[0]), float(_hashprice(model.hashprice, day)[0])
