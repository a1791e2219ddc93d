"""ERCOT's Central prevailing time, read as UTC hours, across daylight saving changes: energy
prices and ancillary prices alike."""

import itertools
from datetime import UTC, datetime
from pathlib import Path

from hashgrid.energy_data import price_columns, read_ercot_utc


def _write(path: Path, day: str, hours: int) -> None:
    rows = ["delivery_date,hour_ending,dam_LZ_WEST,rtm_LZ_WEST"]
    rows += [f"{day},{h},{h},{100 + h}" for h in range(1, hours + 1)]
    path.write_text("\n".join(rows) + "\n")


def test_a_winter_hour_is_six_hours_behind_utc(tmp_path: Path) -> None:
    _write(tmp_path / "p.csv", "2025-01-15", 24)
    prices = read_ercot_utc(tmp_path / "p.csv", price_columns("LZ_WEST"))
    assert prices[datetime(2025, 1, 15, 6, tzinfo=UTC)] == (1.0, 101.0)  # HE1: 00:00 CST
    assert prices[datetime(2025, 1, 16, 5, tzinfo=UTC)] == (24.0, 124.0)  # HE24: 23:00 CST


def test_the_23_hour_spring_day_maps_each_hour_once(tmp_path: Path) -> None:
    _write(tmp_path / "p.csv", "2025-03-09", 23)  # clocks go forward at 02:00 local
    prices = read_ercot_utc(tmp_path / "p.csv", price_columns("LZ_WEST"))
    starts = sorted(prices)
    assert starts[0] == datetime(2025, 3, 9, 6, tzinfo=UTC)  # 00:00 CST
    assert starts[-1] == datetime(2025, 3, 10, 4, tzinfo=UTC)  # 23:00 CDT
    assert len(starts) == 23
    assert all((b - a).total_seconds() == 3600 for a, b in itertools.pairwise(starts))


def test_ancillary_prices_apply_at_the_utc_hour_of_their_central_hour(tmp_path: Path) -> None:
    """One column of the system-wide ancillary file: hour ending 18 is 23:00 UTC in winter (CST)
    and 22:00 UTC in summer (CDT)."""
    rows = ["delivery_date,hour_ending,regup,regdn,rrs,nspin,ecrs,wind_pct"]
    for day in ("2025-01-15", "2025-07-02"):
        rows += [f"{day},{h},1,2,3,4,{100 + h},50" for h in range(1, 25)]
    (tmp_path / "as.csv").write_text("\n".join(rows) + "\n")
    ecrs = read_ercot_utc(tmp_path / "as.csv", ("ecrs",))
    assert ecrs[datetime(2025, 1, 15, 23, tzinfo=UTC)] == (118.0,)
    assert ecrs[datetime(2025, 7, 2, 22, tzinfo=UTC)] == (118.0,)
    assert ecrs[datetime(2025, 7, 2, 23, tzinfo=UTC)] == (119.0,)
