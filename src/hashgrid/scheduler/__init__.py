"""Placement, pure: a snapshot of sites, nodes, GPUs, deployments and replicas in; a plan out.
No I/O."""

from hashgrid.scheduler.memory import Architecture, MemoryEstimate, estimate
from hashgrid.scheduler.placement import plan
from hashgrid.scheduler.snapshot import (
    DeploymentView,
    GpuView,
    NodeView,
    Place,
    Plan,
    PowerState,
    Remove,
    ReplicaView,
    Reservation,
    SiteView,
    Snapshot,
    Tier,
    Unplaced,
)

__all__ = [
    "Architecture",
    "DeploymentView",
    "GpuView",
    "MemoryEstimate",
    "NodeView",
    "Place",
    "Plan",
    "PowerState",
    "Remove",
    "ReplicaView",
    "Reservation",
    "SiteView",
    "Snapshot",
    "Tier",
    "Unplaced",
    "estimate",
    "plan",
]
