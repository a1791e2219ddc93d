"""Reading a scenario file and the shared data sets into the simulator's `Fleet` (sim/ does
no I/O). Callers give the data directory (`../shared/data` from a repo root); nothing is copied.

What each data set gives:
- `hardware-power-specs`: each ASIC model's TH/s and W; the H100's memory.
- `mlenergy-llm-energy`: the GPU node's work: two Llama-3.3-70B replicas on 4 H100s each (batch
  cap 128, lm-arena-chat), its output tokens/s and W, plus `HOST_KW` of host per node busy and
  `IDLE_KW` idle (an assumption: host 1.0 kW and 8 x 75 W).
- `azure-llm-inference-2023`: the conversation trace's requests per hour and output tokens per
  request (it is one hour long; `sim.demand` tiles it).
- `ercot-hourly-prices-2024-2025` and `btc-hashprice-daily`: markets (`energy_data`).
- `ripe-atlas-country-rtt`: the router's latency table.
"""

import csv
import json
import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from hashgrid.energy import AsicGroup, Market
from hashgrid.energy_data import (
    HASHPRICE,
    day_number,
    fixed_tariff_market,
    read_ercot_market,
    read_hashprice,
)
from hashgrid.routing import LatencyTable, parse_rtt_csv
from hashgrid.sim import Clients, DemandSpec, Fleet, NodeType, Scenario, SimSite, parse_scenario

SPECS = "hardware-power-specs/asic_gpu_power_specs.csv"
MLENERGY = "mlenergy-llm-energy/mlenergy_llm_configs.csv"
TRACE = "azure-llm-inference-2023/AzureLLMInferenceTrace_conv.csv"
RTT = "ripe-atlas-country-rtt/country_rtt_stat.csv"
HOST_KW, IDLE_KW = 1.5, 1.6
NODE_GPUS, REPLICA_GPUS = 8, 4
NODE_GPU = "H100 SXM5 80GB"
REPLICA_MODEL = "meta-llama/Llama-3.3-70B-Instruct"


class DataError(FileNotFoundError):
    """A data set, or a row the scenario names, is not in the data directory."""


def read_scenario(path: Path) -> Scenario:
    """A scenario from a `.toml` or `.json` file."""
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    return parse_scenario(data)


def _rows(data: Path, name: str) -> list[dict[str, str]]:
    path = data / name
    if not path.is_file():
        raise DataError(f"{path} not found: is {data} the shared data directory?")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def asic_spec(data: Path, model: str) -> tuple[float, float]:
    """(TH/s, W) of one miner of `model`."""
    for row in _rows(data, SPECS):
        if row["category"] == "asic" and row["model"] == model:
            return float(row["nominal_hashrate_th_s"]), float(row["nameplate_power_w"])
    raise DataError(f"no ASIC model {model!r} in {SPECS}")


def replica_spec(data: Path) -> tuple[float, float]:
    """(output tokens/s, W) of one Llama-3.3-70B replica on 4 H100s (ML.ENERGY)."""
    for r in _rows(data, MLENERGY):
        if (r["model_id"], r["task"], r["gpu_model"], r["num_gpus"], r["max_num_seqs"]) == (
            REPLICA_MODEL,
            "lm-arena-chat",
            "H100",
            str(REPLICA_GPUS),
            "128",
        ):
            return float(r["output_throughput_tokens_per_sec"]), float(r["avg_power_watts"])
    raise DataError(f"no {REPLICA_MODEL} row for 4 x H100 in {MLENERGY}")


def node_type(data: Path) -> NodeType:
    gpu = next(r for r in _rows(data, SPECS) if r["model"] == NODE_GPU)
    tokens_s, watts = replica_spec(data)
    replicas = NODE_GPUS // REPLICA_GPUS
    return NodeType(
        gpu_name=f"NVIDIA {NODE_GPU}",
        gpus=NODE_GPUS,
        gpu_memory_bytes=int(float(gpu["gpu_memory_gb"]) * 1e9),
        replica_gpus=REPLICA_GPUS,
        replica_tokens_s=tokens_s,
        busy_kw=replicas * watts / 1e3 + HOST_KW,
        idle_kw=IDLE_KW,
    )


@dataclass(frozen=True)
class TraceStats:
    requests_h: float
    output_tokens: float  # mean per request

    @property
    def output_tokens_s(self) -> float:
        return self.requests_h * self.output_tokens / 3600


def trace_stats(data: Path) -> TraceStats:
    """Rate and mean output length of the Azure conversation trace."""
    rows = _rows(data, TRACE)

    def at(row: dict[str, str]) -> datetime:
        return datetime.fromisoformat(row["TIMESTAMP"][:26])

    seconds = (at(rows[-1]) - at(rows[0])).total_seconds()
    out = sum(int(r["GeneratedTokens"]) for r in rows)
    return TraceStats(len(rows) * 3600 / seconds, out / len(rows))


def read_latency(data: Path) -> LatencyTable:
    path = data / RTT
    if not path.is_file():
        raise DataError(f"{path} not found: is {data} the shared data directory?")
    return parse_rtt_csv(path.read_text())


def _window(market: Market, keep: np.ndarray) -> Market:
    mask = np.isin(market.day, keep)
    return Market(
        market.interval_h,
        market.day[mask],
        market.rt[mask],
        market.dam[mask],
        market.hashprice[mask],
        market.ancillary[mask],
    )


def period_days(scenario: Scenario, data: Path, zones: list[str]) -> np.ndarray:
    """The first `days` days on or after `start` with a whole day of prices at every ERCOT zone
    and a hashprice (all days with a hashprice when no site is on ERCOT)."""
    if zones:
        days = np.unique(read_ercot_market(data, zones[0]).day)
    else:
        days = np.array(sorted(read_hashprice(data / HASHPRICE)), dtype=np.int64)
    days = days[days >= day_number(scenario.start.isoformat())][: scenario.days]
    if len(days) == 0:
        end = scenario.start + timedelta(days=scenario.days)
        raise DataError(f"no days of prices from {scenario.start} to {end} in {data}")
    return days


def load_fleet(scenario: Scenario, data: Path) -> Fleet:
    """Resolve a scenario against the data sets (see the module docstring)."""
    if not (data / HASHPRICE).is_file():
        raise DataError(f"{data / HASHPRICE} not found: is {data} the shared data directory?")
    node = node_type(data)
    zones = sorted({s.ercot_zone for s in scenario.sites if s.ercot_zone is not None})
    days = period_days(scenario, data, zones)
    ercot = {z: _window(read_ercot_market(data, z), days) for z in zones}
    sites = []
    for spec in scenario.sites:
        th_s, watts = asic_spec(data, spec.asic_model)
        asics = AsicGroup(spec.asic_model, int(spec.asic_mw * 1e6 // watts), th_s, watts)
        if spec.ercot_zone is not None:
            market, source = ercot[spec.ercot_zone], f"ERCOT {spec.ercot_zone}"
        else:
            assert spec.tariff_usd_per_mwh is not None  # parse_scenario checks one is given
            market = fixed_tariff_market(data, spec.tariff_usd_per_mwh, days)
            source = f"tariff ${spec.tariff_usd_per_mwh:g}/MWh"
        sites.append(
            SimSite(
                spec.name,
                spec.country,
                spec.budget_mw,
                asics,
                spec.gpu_nodes,
                market,
                source,
                spec.asic_ramp_mw_per_h,
            )
        )
    trace = trace_stats(data)
    countries = tuple(scenario.clients)
    demand = DemandSpec(
        peak_requests_h=scenario.trace_copies * trace.requests_h,
        output_tokens=trace.output_tokens,
        firm_share=scenario.firm_share,
        flex_wait_h=scenario.flex_wait_h,
        firm_usd_per_mtok=scenario.firm_usd_per_mtok,
        flex_usd_per_mtok=scenario.flex_usd_per_mtok,
        clients=Clients(
            countries,
            np.array([scenario.clients[c][0] for c in countries]),
            np.array([scenario.clients[c][1] for c in countries]),
        ),
    )
    return Fleet(
        tuple(sites),
        node,
        demand,
        read_latency(data),
        scenario.latency_limit_ms,
        scenario.min_on_h,
    )
