"""A site's plan in the control plane: demand from the work its stored plans recorded, a
forecast for later hours, and the power model's limits (minimum on-time, ASIC ramp)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hashgrid.contracts.api.power import PowerModel
from hashgrid.server.power.planning import (
    FORECAST_DAYS,
    FORECAST_WEEKS,
    NodeWork,
    energy_site,
    node_demand,
    plan_intervals,
)

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)
BASE: dict[str, Any] = {
    "asics": [{"model": "Antminer S21", "count": 4}],  # 14 kW
    "gpus": {"busy_kw": 10.0, "idle_kw": 2.0, "firm_usd_per_node_hour": 30.0},
    "price": {"kind": "fixed", "usd_per_mwh": 30.0},
    "hashprice": {"kind": "constant", "usd_per_ph_day": 50.0},
}


def test_hours_before_now_are_as_recorded_and_now_is_the_work_now() -> None:
    recorded = {NOW - HOUR: NodeWork(firm=2, flex=1)}
    demand = node_demand(NodeWork(firm=3), recorded, [NOW - 2 * HOUR, NOW - HOUR, NOW], NOW)
    assert list(demand.firm) == [3, 2, 3]  # unrecorded: the work now stands in
    assert list(demand.flex) == [0, 1, 0]


def test_later_hours_are_the_same_time_on_the_same_weekday_over_the_last_weeks() -> None:
    """w firm nodes w weeks back at the same time (the 5th week is past the window), and 50 on
    every other day: the weekly cycle wins over the daily one."""
    later = NOW + HOUR
    recorded = {later - timedelta(days=d): NodeWork(firm=50) for d in range(1, 7)}
    recorded |= {later - timedelta(weeks=w): NodeWork(firm=w) for w in range(1, 6)}
    demand = node_demand(NodeWork(firm=1), recorded, [later], NOW)
    assert demand.firm[0] == pytest.approx(sum(range(1, FORECAST_WEEKS + 1)) / FORECAST_WEEKS)


def test_without_that_weekday_later_hours_are_the_mean_of_the_last_days() -> None:
    later = NOW + HOUR
    # The same hour 1..8 days back, but a week back: d firm nodes d days back.
    recorded = {later - timedelta(days=d): NodeWork(firm=d) for d in range(1, 9) if d != 7}
    recorded[NOW] = NodeWork(firm=50)  # the current hour's record is not the forecast's
    demand = node_demand(NodeWork(firm=1), recorded, [later, later + 2 * HOUR], NOW)
    days = [d for d in range(1, FORECAST_DAYS + 1) if d != 7]
    assert demand.firm[0] == pytest.approx(sum(days) / len(days))
    assert demand.firm[1] == 1  # nothing recorded at that hour: the work now


def test_a_day_ahead_forecast_reads_only_days_already_recorded() -> None:
    tomorrow = NOW + timedelta(days=1, hours=1)
    recorded = {NOW + HOUR - timedelta(days=1): NodeWork(flex=4)}
    demand = node_demand(NodeWork(), recorded, [tomorrow], NOW)
    assert list(demand.flex) == [4]  # two days back; one day back (NOW + 1 h) is not over yet


def _plan(model: dict[str, Any], recorded: dict[datetime, NodeWork], hours: int) -> list[Any]:
    power = PowerModel.model_validate(model)
    return plan_intervals("tx", 1.0, power, NodeWork(idle=3), NOW, hours, recorded, NOW)


def test_the_plan_follows_the_daily_cycle_recorded() -> None:
    """Three firm nodes busy from 14:00 to 15:59 every day of the last week: the plan's later
    hours forecast them."""
    recorded = {
        NOW + timedelta(hours=h) - timedelta(days=d): NodeWork(firm=3 if h in (2, 3) else 0)
        for d in range(1, 8)
        for h in range(-12, 12)
    }
    planned = _plan(BASE, recorded, 6)
    inference = [p.interval.inference_mw for p in planned]
    assert inference == pytest.approx([0, 0, 0.03, 0.03, 0, 0])
    assert planned[2].interval.inference_usd == pytest.approx(90.0)


def test_a_node_started_stays_on_for_its_minimum_on_time() -> None:
    """Three nodes busy from 14:00 for an hour: with a 3 h minimum on-time they stay on, idle,
    until 16:59, and the ASICs give way to their idle draw only where the budget needs it."""
    recorded = {
        NOW + timedelta(hours=h) - timedelta(days=d): NodeWork(firm=3 if h == 2 else 0)
        for d in range(1, 8)
        for h in range(-12, 12)
    }
    held = _plan({**BASE, "gpus": {**BASE["gpus"], "min_on_h": 3}}, recorded, 6)
    assert [p.interval.inference_mw for p in held] == pytest.approx([0, 0, 0.03, 0.006, 0.006, 0])
    free = _plan(BASE, recorded, 6)
    assert [p.interval.inference_mw for p in free] == pytest.approx([0, 0, 0.03, 0, 0, 0])


def test_the_asic_load_changes_no_faster_than_its_ramp_limit() -> None:
    """Power at $500 from 14:00 to 15:59 (above what S21s earn): without a limit the miners
    sleep for those hours; at 5 kW per hour they step down and back up."""
    prices = [30.0] * 24
    prices[14] = prices[15] = 500.0
    model = {**BASE, "price": {"kind": "time_of_use", "usd_per_mwh": prices}}
    free = _plan(model, {}, 6)
    assert [p.interval.mining_mw for p in free] == pytest.approx([0.014, 0.014, 0, 0, 0.014, 0.014])
    ramped = _plan({**model, "asic_ramp_mw_per_h": 0.005}, {}, 6)
    assert [p.interval.mining_mw for p in ramped] == pytest.approx(
        [0.014, 0.014, 0.009, 0.004, 0.009, 0.014]
    )
    assert ramped[2].asic_mw == pytest.approx([0.009])


def test_the_ramp_steps_from_what_the_miners_were_ordered_to() -> None:
    """A curtailment kept the miners at 0 MW: at 5 kW per hour the plan brings them back to
    14 kW over three hours, where its own history alone would have them at full power now."""
    model = {**BASE, "asic_ramp_mw_per_h": 0.005}
    power = PowerModel.model_validate(model)
    back = plan_intervals("tx", 1.0, power, NodeWork(idle=3), NOW, 4, {}, NOW, asic_before=0.0)
    assert [p.interval.mining_mw for p in back] == pytest.approx([0.005, 0.010, 0.014, 0.014])
    assert [p.interval.mining_mw for p in _plan(model, {}, 1)] == pytest.approx([0.014])


def test_limits_per_hour_count_quarter_hours_on_a_15_minute_series() -> None:
    """A site on a 15-minute price series is planned every quarter hour: a 2-hour minimum
    on-time is 8 intervals, a ramp of 4 kW per hour 1 kW per interval."""
    quarter = {"kind": "ercot", "path": "/srv/lz_west_15min.csv", "point": "LZ_WEST"}
    model = PowerModel.model_validate(
        {
            **BASE,
            "gpus": {**BASE["gpus"], "min_on_h": 2},
            "asic_ramp_mw_per_h": 0.004,
            "price": {**quarter, "interval_min": 15},
        }
    )
    assert model.interval == timedelta(minutes=15)
    site = energy_site("tx", 1.0, model, NodeWork(idle=3))
    assert site.gpus.min_on_intervals == 8
    assert site.asic_ramp_mw == pytest.approx(0.001)
    hourly = PowerModel.model_validate({**BASE, "price": quarter})
    assert hourly.interval == HOUR
