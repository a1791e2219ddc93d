"""What a site can draw and earn: its power budget, its ASIC fleet, its GPU nodes and how much
flexibility it may sell to the grid. Plain values; the planner and the policies read them.

Two limits on how fast the site's load may change, kept by the hindsight plan and by every
dispatch alike:
- Minimum on-time (`GpuFleet.min_on_intervals`): a GPU node started in interval t stays on
  through t + U - 1, drawing idle power while it has no work (starting one means a boot and
  loading weights: minutes of power without revenue, so operators do not cycle nodes hourly).
  Nodes are off before the first interval.
- Ramp limit (`Site.asic_ramp_mw`): the planned ASIC load changes by at most R MW from one
  interval to the next (a utility's or the grid's rule on how fast a big load swings). Firm
  inference is served as it arrives, so where it grows the ASIC load may also fall by the power
  of that growth (`asic_fall_mw`). The first interval is free. A curtailment event is not a
  planned ramp: it is obeyed at once, whatever the limit (server/power/shedding.py).

Units: power in MW, hashprice in USD per PH/s per day, money in USD, time in hours; the limits
count intervals of the market the site is planned on (callers convert hours).
"""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class AsicGroup:
    """Miners of one model. Their power can be set anywhere from 0 to `mw` within seconds
    (sleep or power target), so the planner treats a group as a continuous load."""

    model: str
    count: int
    th_s: float  # hashrate of one miner, TH/s
    watts: float  # power of one miner at that hashrate

    @property
    def mw(self) -> float:
        return self.count * self.watts / 1e6

    @property
    def j_per_th(self) -> float:
        return self.watts / self.th_s

    def usd_per_mwh(self, hashprice: Floats | float) -> Floats:
        """What one MWh into these miners earns: a MW hashes 1e6 / (J/TH) TH/s, that is
        1e3 / (J/TH) PH/s, paid hashprice / 24 per hour (S21 at $50/PH/day: $119/MWh)."""
        return np.asarray(hashprice, dtype=np.float64) * 1e3 / (self.j_per_th * 24.0)


@dataclass(frozen=True, slots=True)
class GpuFleet:
    """The site's GPU nodes. A busy node draws `busy_kw`; a node kept on without work draws
    `idle_kw`; a node off draws nothing. Inference revenue is per node-hour of serving. A node
    started stays on for at least `min_on_intervals` intervals (module docstring)."""

    nodes: int
    busy_kw: float
    idle_kw: float
    firm_usd_per_node_hour: float
    flex_usd_per_node_hour: float  # flex work is sold cheaper: it may wait or move
    min_on_intervals: int = 1  # 1: a node may stop in the interval after it starts

    def __post_init__(self) -> None:
        if self.nodes < 0 or not 0 <= self.idle_kw <= self.busy_kw:
            raise ValueError("need nodes >= 0 and 0 <= idle_kw <= busy_kw")
        if self.min_on_intervals < 1:
            raise ValueError("min_on_intervals must be at least 1")

    @property
    def busy_mw(self) -> float:
        return self.nodes * self.busy_kw / 1e3


@dataclass(frozen=True, slots=True)
class Site:
    """A place with a power budget shared by ASICs and GPU nodes (the installed total may exceed
    it: the ASICs give way when GPUs serve). `ancillary_mw` caps the flexibility offered to the
    grid; only ASIC load can back an offer, because only it can be shed in seconds without
    failing customers. `asic_ramp_mw` limits the change of the ASIC load per interval (None:
    unlimited; module docstring)."""

    name: str
    budget_mw: float
    asics: tuple[AsicGroup, ...]
    gpus: GpuFleet
    ancillary_mw: float = 0.0
    asic_ramp_mw: float | None = None

    def __post_init__(self) -> None:
        if self.budget_mw < 0 or self.ancillary_mw < 0:
            raise ValueError("budget and ancillary offer must not be negative")
        if self.asic_ramp_mw is not None and self.asic_ramp_mw < 0:
            raise ValueError("asic_ramp_mw must not be negative")

    @property
    def asic_mw(self) -> Floats:
        """Capacity of each ASIC group, in the order of `asics`."""
        return np.array([g.mw for g in self.asics], dtype=np.float64)

    def mining_value(self, hashprice: Floats) -> Floats:
        """USD per MWh into each ASIC group (T x groups) at the given hashprices."""
        columns = [g.usd_per_mwh(hashprice) for g in self.asics]
        return np.column_stack(columns) if columns else np.zeros((len(hashprice), 0))

    def by_efficiency(self) -> list[int]:
        """Indices of the ASIC groups, most efficient (lowest J/TH) first: the order in which
        spare power is given to miners, since at any price the efficient ones earn more."""
        return sorted(range(len(self.asics)), key=lambda g: (self.asics[g].j_per_th, g))

    def gpu_mw(self, nodes_on: Floats, busy: Floats) -> Floats:
        """GPU power: idle draw of every node on, plus the busy nodes' extra."""
        extra = (self.gpus.busy_kw - self.gpus.idle_kw) / 1e3
        return np.asarray(nodes_on * self.gpus.idle_kw / 1e3 + busy * extra, np.float64)

    def servable_firm(self, firm: Floats) -> Floats:
        """Firm demand the site can serve: no more than its nodes, nor than its budget powers."""
        node_mw = self.gpus.busy_kw / 1e3
        most = min(float(self.gpus.nodes), self.budget_mw / node_mw if node_mw > 0 else 0.0)
        return np.minimum(np.asarray(firm, dtype=np.float64), most)

    def asic_fall_mw(self, firm: Floats) -> Floats:
        """How far the ASIC load may fall into each interval from the one before: the ramp limit
        plus the busy power of the firm work's growth, which is served as it arrives (inf with
        no limit; the first interval is free)."""
        if self.asic_ramp_mw is None:
            return np.full(len(firm), np.inf)
        growth = np.maximum(np.diff(firm, prepend=firm[:1]), 0.0)
        return np.asarray(self.asic_ramp_mw + growth * self.gpus.busy_kw / 1e3, np.float64)
