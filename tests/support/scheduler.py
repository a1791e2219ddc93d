"""Builders of scheduler snapshots for tests, and the plan carried out on a snapshot."""

from collections.abc import Iterable

from hashgrid.scheduler import (
    DeploymentView,
    GpuView,
    NodeView,
    Plan,
    PowerState,
    ReplicaView,
    Reservation,
    SiteView,
    Snapshot,
    Tier,
)

MIB = 2**20
GIB = 2**30
H100 = "NVIDIA H100 80GB HBM3"
L4 = "NVIDIA L4"


def site(id: str = "s1", region: str = "eu", power: PowerState = PowerState.ACTIVE) -> SiteView:
    return SiteView(id, region, power)


def cpu(
    id: str,
    site: str = "s1",
    memory: int = 10 * GIB,
    schedulable: bool = True,
    cordoned: bool = False,
    holds: Iterable[str] | None = None,
) -> NodeView:
    """A node without GPUs: its RAM is what it offers."""
    held = None if holds is None else frozenset(holds)
    return NodeView(id, site, memory, (), schedulable, cordoned, held)


def gpu(
    id: str,
    site: str = "s1",
    count: int = 2,
    memory: int = 80 * GIB,
    name: str = H100,
    quarantined: Iterable[int] = (),
    schedulable: bool = True,
    cordoned: bool = False,
    holds: Iterable[str] | None = None,
) -> NodeView:
    """A node with `count` GPUs of one kind."""
    bad = set(quarantined)
    gpus = tuple(GpuView(i, name, memory, i in bad) for i in range(count))
    held = None if holds is None else frozenset(holds)
    return NodeView(id, site, 512 * GIB, gpus, schedulable, cordoned, held)


def dep(
    id: str = "d",
    memory: int = GIB,
    replicas: int = 1,
    tp: int = 1,
    gpu_only: bool = False,
    gpu_type: str | None = None,
    regions: Iterable[str] = (),
    tier: Tier = Tier.FIRM,
    source: str | None = None,
    generation: int = 0,
    reservations: Iterable[Reservation] = (),
) -> DeploymentView:
    return DeploymentView(
        id,
        replicas,
        memory,
        tp,
        gpu_only,
        gpu_type,
        frozenset(regions),
        tier,
        source,
        generation,
        reservations=tuple(reservations),
    )


def rep(
    id: str,
    deployment: str,
    node: str,
    memory: int = GIB,
    gpus: tuple[int, ...] = (),
    ready: bool = False,
    failed_too_long: bool = False,
    generation: int = 0,
    contract: str | None = None,
) -> ReplicaView:
    return ReplicaView(
        id, deployment, node, memory, gpus, ready, failed_too_long, generation, contract
    )


def snap(
    nodes: Iterable[NodeView] = (),
    deployments: Iterable[DeploymentView] = (),
    replicas: Iterable[ReplicaView] = (),
    cooling: Iterable[tuple[str, str]] = (),
    sites: Iterable[SiteView] = (),
) -> Snapshot:
    """A snapshot; sites the nodes name but `sites` lacks are active, in region "eu"."""
    nodes = tuple(nodes)
    given = {s.id: s for s in sites}
    for n in nodes:
        given.setdefault(n.site, site(n.site))
    return Snapshot(
        tuple(given.values()), nodes, tuple(deployments), tuple(replicas), frozenset(cooling)
    )


def apply(s: Snapshot, p: Plan) -> Snapshot:
    """The snapshot after the plan is carried out: placements become (not ready) replicas."""
    removed = {r.replica_id for r in p.removes}
    by_id = {d.id: d for d in s.deployments}
    kept = [r for r in s.replicas if r.id not in removed]
    taken = {r.id for r in kept}
    fresh = (f"new{i}" for i in range(len(taken) + len(p.places) + 1))
    ids = [i for i in fresh if i not in taken][: len(p.places)]
    added = [
        ReplicaView(
            rid,
            x.deployment_id,
            x.node_id,
            by_id[x.deployment_id].memory_bytes,
            x.gpus,
            generation=by_id[x.deployment_id].generation,
            contract_id=x.contract_id,
        )
        for rid, x in zip(ids, p.places, strict=True)
    ]
    return Snapshot(s.sites, s.nodes, s.deployments, (*kept, *added), s.cooling)
