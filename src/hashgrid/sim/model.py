"""What the simulator reads: a fleet of sites with their prices, one GPU node type, client
demand and the latency table. Plain values resolved by the caller (`hashgrid.sim_data` reads
the shared data sets into them); the simulator does no I/O.

Units as in `energy/`: MW, USD, hours; RTT in milliseconds; demand in requests.
"""

from dataclasses import dataclass, replace

import numpy as np

from hashgrid.energy import AsicGroup, Market
from hashgrid.energy.site import Floats
from hashgrid.routing import LatencyTable


@dataclass(frozen=True, slots=True)
class NodeType:
    """The GPU node every site runs: `gpus` accelerators hosting replicas of one model, each
    replica on `replica_gpus` of them serving `replica_tokens_s` output tokens per second."""

    gpu_name: str
    gpus: int
    gpu_memory_bytes: int
    replica_gpus: int
    replica_tokens_s: float
    busy_kw: float
    idle_kw: float

    @property
    def replicas(self) -> int:
        return self.gpus // self.replica_gpus

    @property
    def tokens_s(self) -> float:
        return self.replicas * self.replica_tokens_s


@dataclass(frozen=True, slots=True)
class SimSite:
    """One site: where it is, its power budget, its miners, its GPU nodes and its market.
    Sites on a market with ancillary prices (ERCOT) offer ASIC load to the grid; a tariff
    site has no such market."""

    name: str
    country: str  # ISO 3166-1 alpha-2
    budget_mw: float
    asics: AsicGroup
    gpu_nodes: int
    market: Market
    price_source: str  # "ERCOT LZ_WEST", "tariff $40/MWh": for reports
    asic_ramp_mw_per_h: float | None = None  # None: the miners' load may change at once


@dataclass(frozen=True, slots=True)
class Clients:
    """Where requests come from: a weight per country (summing to 1) and its UTC offset, which
    sets when its daily peak falls."""

    countries: tuple[str, ...]
    weights: Floats
    utc_offset_h: Floats

    def __post_init__(self) -> None:
        n = len(self.countries)
        if n == 0 or len(self.weights) != n or len(self.utc_offset_h) != n:
            raise ValueError("clients need one weight and one UTC offset per country")
        if np.any(self.weights < 0) or not np.isclose(self.weights.sum(), 1.0):
            raise ValueError("client weights must be non-negative and sum to 1")


@dataclass(frozen=True, slots=True)
class DemandSpec:
    """Inference demand: `peak_requests_h` requests per hour when every client country is at
    its daily peak, of `output_tokens` output tokens each (the trace's mean); a share is firm
    (served within the latency limit or dropped), the rest flex (any site, may wait)."""

    peak_requests_h: float
    output_tokens: float
    firm_share: float
    flex_wait_h: int
    firm_usd_per_mtok: float
    flex_usd_per_mtok: float
    clients: Clients


@dataclass(frozen=True, slots=True)
class Fleet:
    """Everything one simulation run needs. Every site's market covers the same hours."""

    sites: tuple[SimSite, ...]
    node: NodeType
    demand: DemandSpec
    latency: LatencyTable
    latency_limit_ms: float
    min_on_h: float = 1.0  # a GPU node started stays on at least this long

    def __post_init__(self) -> None:
        if not self.sites:
            raise ValueError("a fleet needs at least one site")
        days = self.sites[0].market.day
        if any(not np.array_equal(s.market.day, days) for s in self.sites):
            raise ValueError("every site's market must cover the same intervals")
        if len({s.name for s in self.sites}) != len(self.sites):
            raise ValueError("site names must be unique")

    @property
    def hours(self) -> int:
        return len(self.sites[0].market)


def convert_asics(fleet: Fleet, site: str, mw: float) -> Fleet:
    """The fleet with `mw` of `site`'s ASICs replaced by as many GPU nodes as that power runs
    busy (whole nodes, rounded down); the budget stays. 0 MW changes nothing, so a what-if of
    0 MW must reproduce its baseline exactly."""
    if mw < 0:
        raise ValueError("MW to convert must not be negative")
    names = [s.name for s in fleet.sites]
    if site not in names:
        raise ValueError(f"no site {site!r} (sites: {', '.join(names)})")
    old = fleet.sites[names.index(site)]
    if mw > old.asics.mw + 1e-9:
        raise ValueError(f"{site} has {old.asics.mw:.2f} MW of ASICs, fewer than {mw:g}")
    removed = min(old.asics.count, round(mw * 1e6 / old.asics.watts))
    new = replace(
        old,
        asics=replace(old.asics, count=old.asics.count - removed),
        gpu_nodes=old.gpu_nodes + int(mw * 1e3 // fleet.node.busy_kw),
    )
    sites = tuple(new if s.name == site else s for s in fleet.sites)
    return replace(fleet, sites=sites)
