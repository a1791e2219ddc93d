"""Scenario files: the packaged 40-site fleet parses and spans continents; mistakes are named;
with the shared data a scenario resolves into a fleet of aligned markets."""

import tomllib
from importlib import resources
from typing import Any

import numpy as np
import pytest

from hashgrid.routing.countries import CONTINENT
from hashgrid.sim import ScenarioError, parse_scenario

from support.data import DATA


def packaged() -> dict[str, Any]:
    text = (resources.files("hashgrid.sim") / "scenarios" / "fleet40.toml").read_text()
    return tomllib.loads(text)


def test_the_packaged_scenario_has_40_sites_on_several_continents() -> None:
    scenario = parse_scenario(packaged())
    assert len(scenario.sites) == 40
    assert len({CONTINENT[s.country] for s in scenario.sites}) >= 4
    assert any(s.ercot_zone for s in scenario.sites)
    assert any(s.tariff_usd_per_mwh for s in scenario.sites)
    assert sum(w for w, _ in scenario.clients.values()) == pytest.approx(1.0)


def test_a_site_needs_exactly_one_price() -> None:
    data = packaged()
    data["sites"][0]["tariff_usd_per_mwh"] = 40.0  # beside its ercot_zone
    with pytest.raises(ScenarioError, match=r"sites\[0\].*exactly one"):
        parse_scenario(data)


def test_a_wrong_kind_of_field_is_named() -> None:
    data = packaged()
    data["sites"][3]["gpu_nodes"] = "many"
    with pytest.raises(ScenarioError, match=r"sites\[3\]: 'gpu_nodes' must be int"):
        parse_scenario(data)
    data = packaged()
    del data["demand"]["firm_share"]
    with pytest.raises(ScenarioError, match="missing 'firm_share'"):
        parse_scenario(data)


def test_a_scenario_resolves_against_the_shared_data() -> None:
    from dataclasses import replace

    from hashgrid.sim_data import load_fleet

    scenario = replace(parse_scenario(packaged()), days=3)
    fleet = load_fleet(scenario, DATA)
    assert fleet.hours == 72
    texas = next(s for s in fleet.sites if s.price_source.startswith("ERCOT"))
    tariff = next(s for s in fleet.sites if s.price_source.startswith("tariff"))
    assert texas.market.ancillary.any()
    assert not tariff.market.ancillary.any()
    assert np.all(tariff.market.rt == tariff.market.rt[0])
    assert fleet.node.busy_kw > fleet.node.idle_kw > 0


def test_limits_on_how_fast_the_load_changes_reach_the_fleet() -> None:
    from dataclasses import replace

    from hashgrid.sim_data import load_fleet

    data = packaged()
    data["min_on_h"] = 2
    data["sites"][0]["asic_ramp_mw_per_h"] = 1.5
    scenario = parse_scenario(data)
    assert (scenario.min_on_h, scenario.sites[0].asic_ramp_mw_per_h) == (2.0, 1.5)
    assert scenario.sites[1].asic_ramp_mw_per_h is None  # unlimited unless given
    fleet = load_fleet(replace(scenario, days=3), DATA)
    assert (fleet.min_on_h, fleet.sites[0].asic_ramp_mw_per_h) == (2.0, 1.5)

    data["sites"][0]["asic_ramp_mw_per_h"] = -1
    with pytest.raises(ScenarioError, match=r"sites\[0\]: asic_ramp_mw_per_h"):
        parse_scenario(data)
    data = packaged()
    data["min_on_h"] = 200
    with pytest.raises(ScenarioError, match="min_on_h"):
        parse_scenario(data)
