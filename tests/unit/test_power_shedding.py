"""Curtailment's order: ASICs first (whole miners, most efficient kept), then flex, then firm;
and when one with a deadline begins: a lead before it, the longer one when replicas move."""

from datetime import UTC, datetime, timedelta

import pytest

from hashgrid.contracts.api.power import AsicGroupSpec
from hashgrid.contracts.states import MinerAction, SitePowerState
from hashgrid.server.power.shedding import Leads, Load, miner_orders, shed

S21 = AsicGroupSpec(model="Antminer S21", count=10)  # 3.5 kW, 17.5 J/TH: 35 kW
S19 = AsicGroupSpec(model="Antminer S19j Pro", count=10)  # 3.068 kW, 29.5 J/TH: 30.68 kW
LOAD = Load(asic_mw=(0.035, 0.03068), flex_mw=0.02, firm_mw=0.01)


def test_asics_give_way_first_and_the_least_efficient_go_first() -> None:
    decided = shed(LOAD, 0.06, [S21, S19])
    # 30 kW left for ASICs: all ten S21s hash (35 kW) would not fit; 8 do (28 kW).
    assert decided.asic_kept_mw == (pytest.approx(0.028), 0.0)
    assert decided.power_state is SitePowerState.ACTIVE
    assert (decided.flex_shed_mw, decided.firm_shed_mw) == (0.0, 0.0)


def test_flex_goes_once_asics_are_not_enough_then_firm() -> None:
    curtailed = shed(LOAD, 0.02, [S21, S19])
    assert curtailed.asic_kept_mw == (0.0, 0.0)
    assert curtailed.asic_shed_mw == pytest.approx(0.06568)
    assert curtailed.power_state is SitePowerState.CURTAILED
    assert (curtailed.flex_shed_mw, curtailed.firm_shed_mw) == (0.02, 0.0)
    everything = shed(LOAD, 0.0, [S21, S19])
    assert everything.power_state is SitePowerState.DRAINING
    assert (everything.flex_shed_mw, everything.firm_shed_mw) == (0.02, 0.01)


def test_a_target_above_the_load_sheds_nothing() -> None:
    decided = shed(LOAD, 1.0, [S21, S19])
    assert decided.asic_kept_mw == LOAD.asic_mw
    assert decided.asic_shed_mw == 0.0


def test_orders_wake_as_many_miners_as_the_kept_power_runs() -> None:
    group = AsicGroupSpec(model="Antminer S21", addresses=["10.0.0.1", "10.0.0.2", "10.0.0.3"])
    actions = [o.action for o in miner_orders([group], [0.0075])]  # 2 x 3.5 kW fit
    assert actions == [MinerAction.RESUME, MinerAction.RESUME, MinerAction.SLEEP]
    assert {o.action for o in miner_orders([group], [0.0105])} == {MinerAction.RESUME}


def test_an_unknown_model_needs_its_figures() -> None:
    with pytest.raises(ValueError, match="give th_s and watts"):
        AsicGroupSpec(model="Mystery 9000", count=1)
    assert AsicGroupSpec(model="Mystery 9000", count=1, th_s=100, watts=2000).watts == 2000


ADDRESSES = [f"10.0.0.{i}" for i in range(1, 5)]


def _targets(kept_mw: float, **spec: object) -> list[tuple[MinerAction, int | None]]:
    group = AsicGroupSpec(model="Antminer S21", addresses=ADDRESSES, control="power", **spec)
    return [(o.action, o.watts) for o in miner_orders([group], [kept_mw])]


def test_power_control_spreads_the_kept_power_as_targets() -> None:
    """4 S21s (3.5 kW, least 1.75 kW by default): 10 kW is 2.5 kW each, none asleep; full power
    is an explicit nameplate target, so a limit set earlier does not linger."""
    assert _targets(0.010) == [(MinerAction.POWER, 2500)] * 4
    assert _targets(0.014) == [(MinerAction.POWER, 3500)] * 4
    assert _targets(0.020) == [(MinerAction.POWER, 3500)] * 4  # never above nameplate


def test_power_control_sleeps_only_the_miners_it_cannot_keep_above_their_least() -> None:
    """5 kW with a 2 kW least: two miners at 2.5 kW, two asleep; under 2 kW all sleep."""
    assert (
        _targets(0.005, min_watts=2000)
        == [(MinerAction.POWER, 2500)] * 2 + [(MinerAction.SLEEP, None)] * 2
    )
    assert _targets(0.0019, min_watts=2000) == [(MinerAction.SLEEP, None)] * 4


def test_power_control_keeps_more_of_a_curtailment_target_than_whole_miners() -> None:
    """10 kW left for 4 S21s: sleep control keeps two whole miners (7 kW); power control all
    10 kW; with a least of 3 kW, three miners at 3.33 kW."""
    load = Load(asic_mw=(0.014,), flex_mw=0.0, firm_mw=0.0)
    sleep = AsicGroupSpec(model="Antminer S21", addresses=ADDRESSES)
    power = sleep.model_copy(update={"control": "power", "min_watts": 1750.0})
    assert shed(load, 0.010, [sleep]).asic_kept_mw == (pytest.approx(0.007),)
    assert shed(load, 0.010, [power]).asic_kept_mw == (pytest.approx(0.010),)
    least = sleep.model_copy(update={"control": "power", "min_watts": 3000.0})
    assert shed(load, 0.010, [least]).asic_kept_mw == (pytest.approx(0.010),)
    assert shed(load, 0.0029, [least]).asic_kept_mw == (0.0,)


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"min_watts": 2000}, "power control only"),
        ({"control": "power", "min_watts": 4000}, "above watts"),
        ({"control": "dim"}, "control"),
    ],
)
def test_bad_power_control_is_refused(spec: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        AsicGroupSpec(model="Antminer S21", count=1, **spec)


LEADS = Leads(asic=timedelta(seconds=30), drain=timedelta(minutes=5))
NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def test_asics_alone_begin_the_short_lead_before_the_deadline() -> None:
    asics_only = shed(LOAD, 0.06, [S21, S19])
    by = NOW + timedelta(minutes=10)
    assert LEADS.start(asics_only, by, NOW) == by - timedelta(seconds=30)


def test_moving_replicas_begins_the_drain_lead_before_the_deadline() -> None:
    by = NOW + timedelta(minutes=10)
    for target in (0.02, 0.0):  # flex replicas move; then every replica
        assert LEADS.start(shed(LOAD, target, [S21, S19]), by, NOW) == by - timedelta(minutes=5)


def test_a_deadline_closer_than_its_lead_or_past_begins_now() -> None:
    flex = shed(LOAD, 0.02, [S21, S19])
    assert LEADS.start(flex, NOW + timedelta(minutes=2), NOW) == NOW
    assert LEADS.start(shed(LOAD, 0.06, [S21, S19]), NOW + timedelta(seconds=10), NOW) == NOW
    assert LEADS.start(flex, NOW - timedelta(hours=1), NOW) == NOW
    assert LEADS.start(flex, NOW, NOW) == NOW  # no deadline: by is now
