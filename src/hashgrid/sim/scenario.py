"""A scenario: the sites, demand and period of a simulation, as an operator writes it (a TOML or
JSON file parsed by the caller into a dict). Validated here; resolved into a `Fleet` against
the data sets by `hashgrid.sim_data`.

    name = "..."; start = "2025-01-01"; days = 365; latency_limit_ms = 150
    min_on_h = 2                           # optional: a GPU node started stays on this long
    [demand]  trace_copies, firm_share, flex_wait_h, firm_usd_per_mtok, flex_usd_per_mtok
    [demand.clients]  US = [0.30, -6]      # country = [weight, UTC offset in hours]
    [[sites]]  name, country, budget_mw, asic_model, asic_mw, gpu_nodes,
               and one price: ercot_zone = "LZ_WEST" or tariff_usd_per_mwh = 40;
               optional asic_ramp_mw_per_h (the ASIC load changes by at most this per hour)
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any


class ScenarioError(ValueError):
    """The scenario is missing a field or has one of the wrong kind."""


@dataclass(frozen=True, slots=True)
class SiteSpec:
    name: str
    country: str
    budget_mw: float
    asic_model: str  # a model of `hardware-power-specs`
    asic_mw: float  # installed ASIC power (may exceed what the budget leaves the GPUs)
    gpu_nodes: int
    ercot_zone: str | None = None  # buys at this ERCOT settlement point's real-time price
    tariff_usd_per_mwh: float | None = None  # or at a fixed price
    asic_ramp_mw_per_h: float | None = None  # None: the miners' load may change at once


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    start: date
    days: int
    latency_limit_ms: float
    trace_copies: float  # Azure conversation traces' request rate at each country's peak
    firm_share: float
    flex_wait_h: int
    firm_usd_per_mtok: float
    flex_usd_per_mtok: float
    clients: Mapping[str, tuple[float, float]]  # country -> (weight, UTC offset h)
    sites: tuple[SiteSpec, ...]
    min_on_h: float = 1.0  # a GPU node started stays on at least this long


def _get(table: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in table:
        raise ScenarioError(f"{where}: missing {key!r}")
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ScenarioError(f"{where}: {key!r} must be {kind.__name__}, not {value!r}")
    return value


def _site(table: Mapping[str, Any], i: int) -> SiteSpec:
    where = f"sites[{i}]"
    zone, tariff = table.get("ercot_zone"), table.get("tariff_usd_per_mwh")
    if (zone is None) == (tariff is None):
        raise ScenarioError(f"{where}: give exactly one of 'ercot_zone' and 'tariff_usd_per_mwh'")
    spec = SiteSpec(
        name=_get(table, "name", str, where),
        country=_get(table, "country", str, where).upper(),
        budget_mw=_get(table, "budget_mw", float, where),
        asic_model=_get(table, "asic_model", str, where),
        asic_mw=_get(table, "asic_mw", float, where),
        gpu_nodes=_get(table, "gpu_nodes", int, where),
        ercot_zone=None if zone is None else _get(table, "ercot_zone", str, where),
        tariff_usd_per_mwh=None
        if tariff is None
        else _get(table, "tariff_usd_per_mwh", float, where),
        asic_ramp_mw_per_h=None
        if table.get("asic_ramp_mw_per_h") is None
        else _get(table, "asic_ramp_mw_per_h", float, where),
    )
    if spec.budget_mw <= 0 or spec.asic_mw < 0 or spec.gpu_nodes < 0:
        raise ScenarioError(f"{where}: budget must be positive, ASIC MW and GPU nodes >= 0")
    if spec.asic_ramp_mw_per_h is not None and spec.asic_ramp_mw_per_h < 0:
        raise ScenarioError(f"{where}: asic_ramp_mw_per_h must not be negative")
    return spec


def parse_scenario(data: Mapping[str, Any]) -> Scenario:
    """A scenario from a parsed TOML or JSON document (layout in the module docstring)."""
    demand = _get(data, "demand", dict, "scenario")
    raw_clients = _get(demand, "clients", dict, "demand")
    clients: dict[str, tuple[float, float]] = {}
    for country, pair in raw_clients.items():
        if not (isinstance(pair, list) and len(pair) == 2):
            raise ScenarioError(f"demand.clients.{country}: want [weight, utc_offset_h]")
        clients[country.upper()] = (float(pair[0]), float(pair[1]))
    total = sum(w for w, _ in clients.values())
    if total <= 0:
        raise ScenarioError("demand.clients: weights must sum to more than 0")
    sites = tuple(_site(s, i) for i, s in enumerate(_get(data, "sites", list, "scenario")))
    if not sites or len({s.name for s in sites}) != len(sites):
        raise ScenarioError("scenario: needs sites, each with its own name")
    try:
        start = date.fromisoformat(_get(data, "start", str, "scenario"))
    except ValueError as e:
        raise ScenarioError(f"scenario: 'start' is no ISO date: {e}") from None
    scenario = Scenario(
        name=str(data.get("name", "scenario")),
        start=start,
        days=_get(data, "days", int, "scenario"),
        latency_limit_ms=_get(data, "latency_limit_ms", float, "scenario"),
        trace_copies=_get(demand, "trace_copies", float, "demand"),
        firm_share=_get(demand, "firm_share", float, "demand"),
        flex_wait_h=_get(demand, "flex_wait_h", int, "demand"),
        firm_usd_per_mtok=_get(demand, "firm_usd_per_mtok", float, "demand"),
        flex_usd_per_mtok=_get(demand, "flex_usd_per_mtok", float, "demand"),
        clients={c: (w / total, off) for c, (w, off) in clients.items()},
        sites=sites,
        min_on_h=_get(data, "min_on_h", float, "scenario") if "min_on_h" in data else 1.0,
    )
    if scenario.days <= 0 or not 0 <= scenario.firm_share <= 1 or scenario.flex_wait_h < 0:
        raise ScenarioError("scenario: days > 0, 0 <= firm_share <= 1, flex_wait_h >= 0")
    if not 0 <= scenario.min_on_h <= 168:
        raise ScenarioError("scenario: 0 <= min_on_h <= 168")
    return scenario
