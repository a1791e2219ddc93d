"""Replica placement: which node runs each replica a deployment still needs, and which go.

Fit is by memory: a node's accelerator memory, or its RAM on a CPU-only node. Among the nodes a
replica fits, prefer a site that holds fewer replicas of the deployment (sites are failure
domains), then a node that holds fewer, then the tightest fit (pack), then the node id, so the
plan is deterministic for a given snapshot.
"""

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class NodeView:
    id: str
    site: str
    region: str
    capacity_bytes: int
    schedulable: bool = True  # False (lost, draining): its replicas must go elsewhere
    cordoned: bool = False  # True: keeps its replicas, takes no new ones


@dataclass(frozen=True)
class DeploymentView:
    id: str
    memory_bytes: int
    replicas: int
    regions: frozenset[str] = frozenset()  # empty: anywhere


@dataclass(frozen=True)
class ReplicaView:
    id: str
    deployment_id: str
    node_id: str
    memory_bytes: int
    ready: bool = False
    # Failed and not brought back by its agent within the retry window: it moves elsewhere.
    failed_too_long: bool = False


@dataclass(frozen=True)
class Snapshot:
    nodes: tuple[NodeView, ...]
    deployments: tuple[DeploymentView, ...]
    replicas: tuple[ReplicaView, ...]  # active replicas only
    # (deployment id, node id) pairs where a replica is failing: place no other one there.
    cooling: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Place:
    deployment_id: str
    node_id: str


@dataclass(frozen=True)
class Remove:
    replica_id: str
    reason: str


@dataclass(frozen=True)
class Unplaced:
    deployment_id: str
    count: int
    reason: str


@dataclass
class Plan:
    places: list[Place] = field(default_factory=list)
    removes: list[Remove] = field(default_factory=list)
    unplaced: list[Unplaced] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.places or self.removes)


def plan(snapshot: Snapshot) -> Plan:
    """Bring every deployment to its replica count, moving nothing that already fits."""
    result = Plan()
    nodes = {n.id: n for n in snapshot.nodes}
    deployments = {d.id: d for d in snapshot.deployments}
    used: Counter[str] = Counter()
    by_deployment: dict[str, list[ReplicaView]] = {d: [] for d in deployments}
    cooling = set(snapshot.cooling)

    for r in sorted(snapshot.replicas, key=lambda r: r.id):
        node = nodes.get(r.node_id)
        if r.deployment_id not in deployments:
            result.removes.append(Remove(r.id, "deployment deleted"))
        elif node is None or not node.schedulable:
            result.removes.append(Remove(r.id, "node not schedulable"))
        elif r.failed_too_long:
            result.removes.append(Remove(r.id, "kept failing on its node"))
            cooling.add((r.deployment_id, r.node_id))
        else:
            used[r.node_id] += r.memory_bytes
            by_deployment[r.deployment_id].append(r)

    # Every removal before any placement, so memory freed anywhere is usable in this same pass.
    ordered = sorted(deployments.values(), key=lambda d: d.id)
    for d in ordered:
        current = by_deployment[d.id]
        if len(current) > d.replicas:
            # Keep ready replicas; among equals, remove by id, so the choice is deterministic.
            surplus = sorted(current, key=lambda r: (r.ready, r.id))[: len(current) - d.replicas]
            for r in surplus:
                used[r.node_id] -= r.memory_bytes
                result.removes.append(Remove(r.id, "scaled down"))
            by_deployment[d.id] = [r for r in current if r not in surplus]
    for d in ordered:
        current = by_deployment[d.id]
        per_site = Counter(nodes[r.node_id].site for r in current)
        per_node = Counter(r.node_id for r in current)
        missing = d.replicas - len(current)
        for placed in range(missing):
            node = _best_node(d, snapshot.nodes, cooling, used, per_site, per_node)
            if node is None:
                why = _why_unplaced(d, snapshot.nodes, cooling)
                result.unplaced.append(Unplaced(d.id, missing - placed, why))
                break
            used[node.id] += d.memory_bytes
            per_site[node.site] += 1
            per_node[node.id] += 1
            result.places.append(Place(d.id, node.id))
    return result


def _fits(
    d: DeploymentView, n: NodeView, cooling: set[tuple[str, str]], used: Counter[str]
) -> bool:
    return (
        n.schedulable
        and not n.cordoned
        and (not d.regions or n.region in d.regions)
        and (d.id, n.id) not in cooling
        and n.capacity_bytes - used[n.id] >= d.memory_bytes
    )


def _best_node(
    d: DeploymentView,
    nodes: tuple[NodeView, ...],
    cooling: set[tuple[str, str]],
    used: Counter[str],
    per_site: Counter[str],
    per_node: Counter[str],
) -> NodeView | None:
    candidates = [n for n in nodes if _fits(d, n, cooling, used)]
    if not candidates:
        return None
    return min(
        candidates,
        key=lambda n: (per_site[n.site], per_node[n.id], n.capacity_bytes - used[n.id], n.id),
    )


def _why_unplaced(
    d: DeploymentView, nodes: tuple[NodeView, ...], cooling: set[tuple[str, str]]
) -> str:
    ready = [n for n in nodes if n.schedulable]
    if not ready:
        return "no ready node"
    schedulable = [n for n in ready if not n.cordoned]
    if not schedulable:
        return "every ready node is cordoned"
    in_region = [n for n in schedulable if not d.regions or n.region in d.regions]
    if not in_region:
        return f"no ready node in regions {', '.join(sorted(d.regions))}"
    settled = [n for n in in_region if (d.id, n.id) not in cooling]
    if not settled:
        return "replicas failed lately on every eligible node; waiting before retrying"
    need_mib = d.memory_bytes // 2**20
    return f"no node with {need_mib} MiB free"
