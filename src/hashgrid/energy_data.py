"""Reading price and hashprice files into the pure planner's `Market` (energy/ does no I/O).

Layouts are those of the shared data sets: ERCOT's hourly day-ahead and real-time prices
(`delivery_date`, `hour_ending`, `dam_<point>`, `rtm_<point>`), its system-wide ancillary
prices (`regup`, `rrs`, `nspin`, `ecrs`, ... in $/MW-h) and the daily hashprice series (`date`,
`hashprice_usd_per_ph_day`). Callers give the paths; nothing is copied.

Days are numbered as days since 1970-01-01. An ERCOT delivery day (Central time) is paired with
the hashprice of the UTC day of the same date: hours apart, and hashprice moves slowly.
"""

import csv
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from hashgrid.energy import Market, tariff
from hashgrid.energy.prices import Days
from hashgrid.energy.site import Floats

ERCOT_PRICES = "ercot-hourly-prices-2024-2025/ercot_hourly_dam_rtm_2024_2025.csv"
ERCOT_ANCILLARY = "ercot-hourly-prices-2024-2025/ercot_hourly_system_as_genmix_2024_2025.csv"
HASHPRICE = "btc-hashprice-daily/btc_hashprice_daily.csv"


EPOCH = date(1970, 1, 1)
CENTRAL = ZoneInfo("America/Chicago")  # ERCOT's delivery days and hours


def day_number(iso: str) -> int:
    return date.fromisoformat(iso).toordinal() - EPOCH.toordinal()


def read_hashprice(path: Path) -> dict[int, float]:
    """Hashprice (USD per PH/s per day, fees included) by day number."""
    with path.open(newline="") as f:
        return {
            day_number(row["date"]): float(row["hashprice_usd_per_ph_day"])
            for row in csv.DictReader(f)
        }


def read_ercot_hours(
    path: Path, columns: Sequence[str]
) -> dict[tuple[int, int], tuple[float, ...]]:
    """`columns` (prices: USD/MWh or USD/MW-h) by (day number, hour ending 1-24), from a file in
    ERCOT's hourly layout (`delivery_date`, `hour_ending`, then a column per price)."""
    with path.open(newline="") as f:
        return {
            (day_number(row["delivery_date"]), int(row["hour_ending"])): tuple(
                float(row[c]) for c in columns
            )
            for row in csv.DictReader(f)
        }


def read_ercot_utc(path: Path, columns: Sequence[str]) -> dict[datetime, tuple[float, ...]]:
    """`columns` by the UTC start of each interval, from a file in ERCOT's hourly layout, or in
    its 15-minute one: the same with a `delivery_interval` column (1-4 within the hour ending,
    as ERCOT's real-time settlement point prices come), a row per quarter hour.

    ERCOT's delivery dates and hours ending are Central prevailing time. Hour ending H starts
    H-1 elapsed hours after the delivery date's local midnight, so a 23-hour spring day and a
    25-hour autumn day map to the right UTC hours, daylight saving or not."""
    out = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            local_date = date.fromisoformat(row["delivery_date"])
            midnight = datetime.combine(local_date, time(), CENTRAL).astimezone(UTC)
            quarter = int(row.get("delivery_interval") or 1) - 1
            start = midnight + timedelta(hours=int(row["hour_ending"]) - 1, minutes=15 * quarter)
            out[start] = tuple(float(row[c]) for c in columns)
    return out


def price_columns(point: str) -> tuple[str, str]:
    """The day-ahead and real-time price columns of a settlement point in ERCOT_PRICES."""
    return f"dam_{point}", f"rtm_{point}"


def read_ercot_market(data: Path, point: str, product: str = "ecrs") -> Market:
    """Hourly market of one ERCOT settlement point (e.g. LZ_WEST), with `product` as the
    ancillary price. Only days with all 24 hours and a hashprice are kept: partial days in
    the file are gaps in its source, and a plan across them would invent hours."""
    hashprice = read_hashprice(data / HASHPRICE)
    ancillary = read_ercot_hours(data / ERCOT_ANCILLARY, (product,))
    prices = read_ercot_hours(data / ERCOT_PRICES, price_columns(point))
    hours = Counter(d for d, _ in prices)
    kept = sorted(k for k in prices if hours[k[0]] == 24 and k[0] in hashprice)
    day: Days = np.array([d for d, _ in kept], dtype=np.int64)
    return Market(
        interval_h=1.0,
        day=day,
        rt=np.array([prices[k][1] for k in kept]),
        dam=np.array([prices[k][0] for k in kept]),
        hashprice=np.array([hashprice[d] for d in day]),
        ancillary=np.array([ancillary.get(k, (0.0,))[0] for k in kept]),
    )


def fixed_tariff_market(data: Path, usd_per_mwh: float, days: Days) -> Market:
    """Hourly market of a site buying at one fixed price on `days`, with the hashprice file's
    figures for those days."""
    hashprice = read_hashprice(data / HASHPRICE)
    day: Days = np.repeat(days, 24)
    prices: Floats = np.full(len(day), usd_per_mwh)
    return tariff(day, prices, np.array([hashprice[d] for d in day]))
