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
from hashgrid.contracts.api.power import AsicGroupSpec
from hashgrid.contracts.states import MinerAction, SitePowerState


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
    """Bring `load` to at most `target_mw`, tier by tier. ASIC groups keep what their miners
    can draw (`drawable_mw`) within what the GPU nodes leave, most efficient first."""
    gpu_mw = load.flex_mw + load.firm_mw
    room = max(0.0, target_mw - gpu_mw)
    kept = [0.0] * len(load.asic_mw)
    by_efficiency = sorted(range(len(kept)), key=lambda g: (_j_per_th(groups[g]), g))
    for g in by_efficiency:
        kept[g] = drawable_mw(groups[g], min(load.asic_mw[g], room))
        room -= kept[g]
    state, flex, firm = SitePowerState.ACTIVE, 0.0, 0.0
    if gpu_mw > target_mw:
        state, flex = SitePowerState.CURTAILED, load.flex_mw
        if load.firm_mw > target_mw:
            state, firm = SitePowerState.DRAINING, load.firm_mw
    return Shed(tuple(kept), sum(load.asic_mw) - sum(kept), flex, firm, state)


def drawable_mw(group: AsicGroupSpec, mw: float) -> float:
    """The most of `mw` the group's miners can draw: whole miners at full power under `sleep`
    control; under `power`, any total that keeps each hashing miner at or above its least."""
    unit = _miner_mw(group)
    if group.control == "sleep":
        return _miners_within(group, mw, unit) * unit
    return min(mw, _miners_within(group, mw, _least_mw(group)) * unit)


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
    """Per group, the orders that draw its kept MW, to miners in the order of its addresses:
    under `sleep` control as many hash as it powers at full power (RESUME) and the rest sleep;
    under `power`, as many as it keeps at or above their least share it evenly as power targets
    (POWER, nameplate watts at most) and the rest sleep."""
    orders = []
    for group, mw in zip(groups, kept_mw, strict=True):
        watts: int | None = None
        if group.control == "sleep":
            action, hashing = MinerAction.RESUME, _miners_within(group, mw, _miner_mw(group))
        else:
            action, hashing = MinerAction.POWER, _miners_within(group, mw, _least_mw(group))
            watts = math.floor(min(mw * 1e6 / hashing, group.watts or 0.0)) if hashing else 0
        orders += [
            MinerOrder(address=a, action=action, watts=watts)
            if i < hashing
            else MinerOrder(address=a, action=MinerAction.SLEEP)
            for i, a in enumerate(group.addresses)
        ]
    return orders


def _miner_mw(group: AsicGroupSpec) -> float:
    return (group.watts or 0.0) / 1e6


def _least_mw(group: AsicGroupSpec) -> float:
    return (group.min_watts or 0.0) / 1e6


def _j_per_th(group: AsicGroupSpec) -> float:
    return (group.watts or 0.0) / (group.th_s or 1.0)


def _miners_within(group: AsicGroupSpec, mw: float, each_mw: float) -> int:
    """How many of the group's miners `mw` gives `each_mw` apiece (a hair of rounding allowed)."""
    return min(group.count or 0, math.floor(mw / each_mw + 1e-6)) if each_mw > 0 else 0
