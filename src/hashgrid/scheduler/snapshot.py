"""What the scheduler reads (a snapshot of sites, nodes, GPUs, deployments, replicas) and what
it writes (a plan of placements and removals). Plain values; no I/O."""

import math
from dataclasses import dataclass, field
from enum import StrEnum


class Tier(StrEnum):
    FIRM = "firm"  # stays on a curtailed site
    FLEX = "flex"  # leaves a curtailed site


class PowerState(StrEnum):
    """Where a site's power goes, as the power planner decided.

    active: GPU nodes run and take new replicas. draining: power is going back to mining; no new
    replicas, and every replica there moves (as on a draining node). curtailed: the grid or the
    price called for less load; no new replicas, flex replicas move, firm ones stay.
    flex_paused: this hour's plan finds flex work not worth the site's power; flex replicas move
    and none is placed there, firm ones are placed and kept as on an active site.
    """

    ACTIVE = "active"
    FLEX_PAUSED = "flex_paused"
    DRAINING = "draining"
    CURTAILED = "curtailed"


@dataclass(frozen=True, slots=True)
class SiteView:
    id: str
    region: str
    power: PowerState = PowerState.ACTIVE


@dataclass(frozen=True, slots=True)
class GpuView:
    index: int  # NVML index on its node: what CUDA_VISIBLE_DEVICES names
    name: str  # e.g. "NVIDIA H100 80GB HBM3"
    memory_bytes: int
    quarantined: bool = False  # no replica may use it


@dataclass(frozen=True, slots=True)
class NodeView:
    id: str
    site: str  # a SiteView id; a node of an unknown site is not schedulable
    memory_bytes: int  # RAM: what a node without GPUs offers replicas
    gpus: tuple[GpuView, ...] = ()  # none: a CPU node
    schedulable: bool = True  # False (lost, draining): its replicas must go elsewhere
    cordoned: bool = False  # True: keeps its replicas, takes no new ones
    holds: frozenset[str] | None = None  # model sources in its store; None: unknown
    # False (pending, refused, quarantined: `NodeAdmission`): takes no customer traffic, so its
    # replicas must go elsewhere and waking it helps nothing.
    admitted: bool = True
    score: float | None = None  # reliability in [0, 1] (`capacity/score.py`); None: unscored


@dataclass(frozen=True, slots=True)
class Reservation:
    """Replicas of a deployment that a compute contract holds, on top of its on-demand count.

    They are placed before any on-demand replica, firm whatever the deployment's tier (they stay
    on a curtailed site), and are never removed to scale the deployment down nor to make room
    for other work: only their node, their site or the deployment itself moves them.
    """

    contract_id: str
    replicas: int
    regions: frozenset[str] = frozenset()  # where they go; empty: the deployment's regions


@dataclass(frozen=True, slots=True)
class DeploymentView:
    id: str
    replicas: int  # on demand: the autoscaler's count (reserved replicas come on top)
    memory_bytes: int  # one replica over all its GPUs (see scheduler.memory.estimate)
    tensor_parallel_size: int = 1  # GPUs per replica, all on one node
    gpu_only: bool = False  # its engine serves from GPUs only (vLLM, SGLang)
    gpu_type: str | None = None  # a GPU name must contain this (any case), e.g. "H100"
    regions: frozenset[str] = frozenset()  # empty: anywhere
    tier: Tier = Tier.FIRM
    source: str | None = None  # where the weights come from: nodes holding it are preferred
    # Grows with each change of what a replica runs (model, engine, GPUs, regions): replicas of
    # an older generation are replaced by rolling (see placement.py).
    generation: int = 0
    max_surge: int = 1  # replicas beyond `replicas` while rolling
    reservations: tuple[Reservation, ...] = ()  # compute contracts in force (or about to be)

    @property
    def total(self) -> int:
        """Every replica it should run: on demand and reserved."""
        return self.replicas + sum(r.replicas for r in self.reservations)

    @property
    def gpu_memory_bytes(self) -> int:
        """What each of its GPUs must have free."""
        return math.ceil(self.memory_bytes / self.tensor_parallel_size)

    @property
    def cpu_ok(self) -> bool:
        """Whether a CPU node (RAM in place of GPU memory) may run it."""
        return not self.gpu_only and self.tensor_parallel_size == 1 and self.gpu_type is None

    def wants(self, gpu_name: str) -> bool:
        return self.gpu_type is None or self.gpu_type.lower() in gpu_name.lower()


@dataclass(frozen=True, slots=True)
class ReplicaView:
    id: str
    deployment_id: str
    node_id: str
    memory_bytes: int  # as placed, over all its GPUs (split evenly between them)
    gpus: tuple[int, ...] = ()  # NVML indices; empty: on a CPU node
    ready: bool = False
    # Failed and not brought back by its agent within the retry window: it moves elsewhere.
    failed_too_long: bool = False
    generation: int = 0  # its deployment's generation when it was placed
    contract_id: str | None = None  # placed for this compute contract (see Reservation)


@dataclass(frozen=True, slots=True)
class Snapshot:
    sites: tuple[SiteView, ...]
    nodes: tuple[NodeView, ...]
    deployments: tuple[DeploymentView, ...]
    replicas: tuple[ReplicaView, ...]  # active replicas only
    # (deployment id, node id) pairs where a replica is failing: place no other one there.
    cooling: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True, slots=True)
class Place:
    deployment_id: str
    node_id: str
    gpus: tuple[int, ...] = ()  # empty: on a CPU node
    contract_id: str | None = None  # a replica reserved for this compute contract


@dataclass(frozen=True, slots=True)
class Remove:
    replica_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Unplaced:
    deployment_id: str
    count: int
    reason: str
    contract_id: str | None = None  # replicas reserved for this compute contract


@dataclass
class Plan:
    places: list[Place] = field(default_factory=list)
    removes: list[Remove] = field(default_factory=list)
    unplaced: list[Unplaced] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.places or self.removes)
