"""Placement, pure: a snapshot of nodes, deployments and replicas in; a plan out. No I/O."""

from hashgrid.scheduler.placement import (
    DeploymentView,
    NodeView,
    Place,
    Plan,
    Remove,
    ReplicaView,
    Snapshot,
    Unplaced,
    plan,
)

__all__ = [
    "DeploymentView",
    "NodeView",
    "Place",
    "Plan",
    "Remove",
    "ReplicaView",
    "Snapshot",
    "Unplaced",
    "plan",
]
