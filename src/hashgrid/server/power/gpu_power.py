"""What a busy GPU node of a site draws: the power model's figure where it gives one, else what
the site's nodes report through NVML.

Each node agent reads every GPU's enforced power limit through NVML (`GpuInfo.power_limit_w`, in
the node's fingerprint): the most the GPU may draw, which serving a large model approaches. NVML
does not see the rest of the server (CPUs, memory, fans, NICs), so a node's busy draw is its
GPUs' limits plus the model's `host_kw`. Plans and curtailments count a site's nodes as alike
(the planner's `GpuFleet` has one figure per node), so the site's figure is the mean over its
ready nodes that report a limit for every GPU; where none does, a DGX H100's 10.2 kW maximum
system power stands in. A node's idle draw is the model's `idle_kw`, never above its busy draw.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hashgrid.contracts.api.power import MIN_NODE_KW, GpuEconomics

DEFAULT_BUSY_KW = 10.2


@dataclass(frozen=True)
class BusyPower:
    kw: float  # what one busy node draws
    source: str  # where the figure comes from, for operators


def node_busy_kw(fingerprint: Mapping[str, Any], host_kw: float) -> float | None:
    """A node's busy draw from its fingerprint: its GPUs' power limits plus `host_kw`; None when
    a GPU reports no limit (or the node reports no GPU), or limits too small to be real (a plan
    divides by the figure)."""
    limits = [gpu.get("power_limit_w") for gpu in fingerprint.get("gpus", [])]
    if not limits or any(w is None for w in limits):
        return None
    kw = host_kw + sum(float(w) for w in limits) / 1e3
    return kw if kw >= MIN_NODE_KW else None


def busy_power(gpus: GpuEconomics, fingerprints: Iterable[Mapping[str, Any]]) -> BusyPower:
    """What one busy node of a site whose ready nodes report `fingerprints` draws (module
    docstring)."""
    if gpus.busy_kw is not None:
        return BusyPower(gpus.busy_kw, "power model")
    known = [kw for fp in fingerprints if (kw := node_busy_kw(fp, gpus.host_kw)) is not None]
    if not known:
        return BusyPower(DEFAULT_BUSY_KW, "default: no ready node reports its GPUs' power limits")
    nodes = f"{len(known)} node{'s' if len(known) > 1 else ''}"
    return BusyPower(
        sum(known) / len(known), f"NVML power limits of {nodes}, plus {gpus.host_kw:g} kW host"
    )
