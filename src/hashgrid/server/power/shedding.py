"""What a curtailment sheds, in order, when it begins, and which miners hash: decisions from
numbers, no I/O.

Order: ASICs first (they stop in seconds and nobody waits on them), least efficient first;
then flex inference (the site becomes `curtailed`: flex replicas move elsewhere); firm
inference last (`draining`: every replica moves). A curtailment with a deadline begins as late
as what it sheds allows (`Leads`).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from hashgrid.contracts.agent import MinerOrder
from hashgrid.contracts.states import MinerAction, SitePowerState
from hashgrid.server.power.schemas import AsicGroupSpec


@dataclass(frozen=True)
class Load:
    """A site's load now, MW: each ASIC group's, GPU nodes' with flex work only, and the rest
    of the GPU nodes' (firm work, or idle)."""

    asic_mw: tuple[float, ...]
    flex_mw: float
    firm_mw: float

    @property
    def total_mw(self) -> float:
        return sum(self.asic_mw) + self.flex_mw + self.firm_mw


@dataclass(frozen=True)
class Shed:
    asic_kept_mw: tuple[float, ...]  # per group
    asic_shed_mw: float
    flex_shed_mw: float
    firm_shed_mw: float
    power_state: SitePowerState


def shed(load: Load, target_mw: float, groups: Sequence[AsicGroupSpec]) -> Shed:
    """Bring `load` to at most `target_mw`, tier by tier. ASIC groups keep whole miners (they
    are slept or woken one by one) within what the GPU nodes leave, most efficient first."""
    gpu_mw = load.flex_mw + load.firm_mw
    room = max(0.0, target_mw - gpu_mw)
    kept = [0.0] * len(load.asic_mw)
    by_efficiency = sorted(range(len(kept)), key=lambda g: (_j_per_th(groups[g]), g))
    for g in by_efficiency:
        kept[g] = _whole_miners(groups[g], min(load.asic_mw[g], room)) * _miner_mw(groups[g])
        room -= kept[g]
    state, flex, firm = SitePowerState.ACTIVE, 0.0, 0.0
    if gpu_mw > target_mw:
        state, flex = SitePowerState.CURTAILED, load.flex_mw
        if load.firm_mw > target_mw:
            state, firm = SitePowerState.DRAINING, load.firm_mw
    return Shed(tuple(kept), sum(load.asic_mw) - sum(kept), flex, firm, state)


@dataclass(frozen=True)
class Leads:
    """How long before its deadline a curtailment begins: `asic` when ASICs alone give way,
    `drain` when replicas must leave the site (`ServerSettings.curtail_*_lead_s` say why)."""

    asic: timedelta
    drain: timedelta

    def start(self, decided: Shed, by: datetime, now: datetime) -> datetime:
        """When to begin shedding `decided` so that it is done by `by`: no earlier than its
        slowest tier needs, and at once when that is already past."""
        moves_replicas = decided.power_state is not SitePowerState.ACTIVE
        return max(now, by - (self.drain if moves_replicas else self.asic))


def miner_orders(groups: Sequence[AsicGroupSpec], kept_mw: Sequence[float]) -> list[MinerOrder]:
    """Per group, as many miners hash (in the order of its addresses) as its kept MW powers at
    full power; the rest sleep. Sleep and resume are what every firmware with a driver can do."""
    orders = []
    for group, mw in zip(groups, kept_mw, strict=True):
        hashing = _whole_miners(group, mw)
        orders += [
            MinerOrder(address=a, action=MinerAction.RESUME if i < hashing else MinerAction.SLEEP)
            for i, a in enumerate(group.addresses)
        ]
    return orders


def _miner_mw(group: AsicGroupSpec) -> float:
    return (group.watts or 0.0) / 1e6


def _j_per_th(group: AsicGroupSpec) -> float:
    return (group.watts or 0.0) / (group.th_s or 1.0)


def _whole_miners(group: AsicGroupSpec, mw: float) -> int:
    """How many of the group's miners `mw` powers at full power (a hair of rounding allowed)."""
    unit = _miner_mw(group)
    return min(group.count or 0, math.floor(mw / unit + 1e-6)) if unit > 0 else 0
