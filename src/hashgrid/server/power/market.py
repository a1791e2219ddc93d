"""A site's prices, hashprice and ancillary prices as the pure planner's hourly `Market`, from
its stored sources.

Intervals are UTC hours. An ERCOT file's delivery dates and hours ending are Central
prevailing time, converted to UTC hours as read (`energy_data.read_ercot_utc`), so a price
(energy or ancillary) applies to the hour it was set for, across daylight saving changes too.
Days (for the hashprice and the planner's day-ahead information) are UTC days.
"""

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np

from hashgrid.energy import Market
from hashgrid.energy.prices import Days
from hashgrid.energy_data import day_number, price_columns, read_ercot_utc, read_hashprice
from hashgrid.server.errors import Invalid
from hashgrid.server.power.schemas import (
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

# The online policy fits the real-time/day-ahead spread on the last 30 days of known prices;
# a plan reads a day more so the first interval it decides has all of them.
HISTORY_H = 31 * 24

ErcotHours = dict[datetime, tuple[float, ...]]  # the columns asked for, by each hour's UTC start


def hour_of(t: datetime) -> datetime:
    """The start of the UTC hour holding `t`."""
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hourly_market(model: PowerModel, start: datetime, hours: int) -> Market:
    """Hourly intervals from HISTORY_H before `start` (an hour's start) up to `hours` after it;
    raises `Invalid` when a source has no figure for one of them."""
    times = [start + timedelta(hours=i) for i in range(-HISTORY_H, hours)]
    day: Days = np.array([day_number(t.date().isoformat()) for t in times], dtype=np.int64)
    dam, rt = _prices(model.price, times)
    return Market(
        interval_h=1.0,
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
            _ercot(model.price.path, price_columns(model.price.point))
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
    both = _hours(_ercot(source.path, price_columns(source.point)), times, f"{source.point} price")
    return both[:, 0], both[:, 1]


def _ancillary(offer: GridOffer | None, times: list[datetime]) -> np.ndarray:
    if offer is None:
        return np.zeros(len(times))  # the site offers nothing
    if isinstance(offer.price, ConstantAncillary):
        return np.full(len(times), offer.price.usd_per_mw_h)
    product = offer.price.product
    return _hours(_ercot(offer.price.path, (product,)), times, f"{product} price")[:, 0]


def _hours(series: ErcotHours, times: list[datetime], what: str) -> np.ndarray:
    """The series' figures of `times` (a row per hour); raises `Invalid` when it lacks one."""
    missing = [t for t in times if t not in series]
    if missing:
        raise Invalid(
            f"the series has no {what} for {missing[0]:%Y-%m-%d %H:00} UTC "
            f"({len(missing)} of the {len(times)} hours needed, the last 31 days included)"
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


def _ercot(path: str, columns: tuple[str, ...]) -> ErcotHours:
    return _read_ercot(*_stamp(path), columns)


def _hashprice_series(path: str) -> tuple[np.ndarray, np.ndarray]:
    return _read_hashprice(*_stamp(path))


# Read once per file version: the reconciler plans every site every pass.
@lru_cache(maxsize=16)
def _read_ercot(path: str, _mtime_ns: int, columns: tuple[str, ...]) -> ErcotHours:
    return read_ercot_utc(Path(path), columns)


@lru_cache(maxsize=16)
def _read_hashprice(path: str, _mtime_ns: int) -> tuple[np.ndarray, np.ndarray]:
    series = sorted(read_hashprice(Path(path)).items())
    if not series:
        raise ValueError("no rows")
    return np.array([d for d, _ in series]), np.array([v for _, v in series])


def prices_at(model: PowerModel, hour: datetime) -> tuple[float, float]:
    """The real-time price (USD/MWh) and hashprice (USD/PH/day) of one hour; raises `Invalid`
    when a source lacks it."""
    day: Days = np.array([day_number(hour.date().isoformat())], dtype=np.int64)
    _, rt = _prices(model.price, [hour])
    return float(rt[0]), float(_hashprice(model.hashprice, day)[0])
