"""Invariants of the placement planner over random small snapshots (hypothesis): it never
over-commits a GPU or a CPU node's memory, never uses a quarantined GPU, never breaks a
constraint, is deterministic, and a snapshot it has satisfied yields an empty plan."""

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from hashgrid.scheduler import (
    DeploymentView,
    GpuView,
    NodeView,
    Plan,
    PowerState,
    ReplicaView,
    SiteView,
    Snapshot,
    Tier,
    plan,
)

from support.scheduler import GIB, H100, L4, apply

SITE_IDS = ("s1", "s2", "s3")
NODE_IDS = ("n1", "n2", "n3", "n4", "n5")
DEP_IDS = ("d1", "d2", "d3")
SOURCES = ("m1", "m2")


def mostly(value: object, *others: object) -> st.SearchStrategy[object]:
    """`value` four times in five, else one of `others`: most nodes can take replicas."""
    return st.sampled_from([value] * 4 * len(others) + list(others))


sites_st = st.lists(
    st.tuples(
        st.sampled_from(("eu", "us")),
        mostly(
            PowerState.ACTIVE, PowerState.DRAINING, PowerState.CURTAILED, PowerState.FLEX_PAUSED
        ),
    ),
    min_size=len(SITE_IDS),
    max_size=len(SITE_IDS),
)
gpu_st = st.tuples(st.integers(1, 8), st.sampled_from((H100, L4)), mostly(False, True))
node_st = st.tuples(
    st.sampled_from((*SITE_IDS, *SITE_IDS, "nowhere")),
    st.integers(0, 12),  # RAM in GiB: what a CPU node offers
    st.lists(gpu_st, max_size=3),  # empty: a CPU node
    mostly(True, False),  # schedulable
    mostly(False, True),  # cordoned
    st.none() | st.frozensets(st.sampled_from(SOURCES)),
)
deployment_st = st.tuples(
    st.integers(1, 6),  # memory of one replica, GiB
    st.integers(0, 4),  # replicas
    mostly(1, 2, 3),  # tensor parallel size
    st.booleans(),  # GPU-only engine
    mostly(None, "H100", "l4"),
    mostly((), ("eu",), ("us",), ("eu", "us"), ("ap",)).map(frozenset),
    st.sampled_from(list(Tier)),
    st.sampled_from(SOURCES),
)
replica_st = st.tuples(
    mostly(0, 1, 2, None),  # which deployment (modulo how many there are); None: a deleted one
    mostly(0, 1, 2, 3, 4, None),  # which node, likewise; None: one the snapshot lacks
    # Mostly GPUs as a placement would give them (from this offset among the node's GPUs),
    # sometimes any list of indices.
    st.integers(0, 2) | st.lists(st.integers(0, 3), max_size=3),
    st.booleans(),
)


def build(sites, nodes, deployments, replicas, cooling) -> Snapshot:  # type: ignore[no-untyped-def]
    site_views = tuple(
        SiteView(SITE_IDS[i], region, power) for i, (region, power) in enumerate(sites)
    )
    node_views = tuple(
        NodeView(
            NODE_IDS[i],
            site,
            ram * GIB,
            tuple(GpuView(g, name, mem * GIB, bad) for g, (mem, name, bad) in enumerate(gpus)),
            ok,
            cordoned,
            holds,
        )
        for i, (site, ram, gpus, ok, cordoned, holds) in enumerate(nodes)
    )
    deployment_views = tuple(
        DeploymentView(DEP_IDS[i], count, mem * GIB, tp, gpu_only, kind, regions, tier, source)
        for i, (mem, count, tp, gpu_only, kind, regions, tier, source) in enumerate(deployments)
    )
    by_id = {d.id: d for d in deployment_views}
    on = {n.id: n for n in node_views}

    def gpus_of(d: str, n: str, gpus: int | list[int]) -> tuple[int, ...]:
        if not isinstance(gpus, int):
            return tuple(gpus)
        node, deployment = on.get(n), by_id.get(d)
        if node is None or deployment is None or not node.gpus:
            return ()
        indices = [g.index for g in node.gpus]
        return tuple(indices[gpus : gpus + deployment.tensor_parallel_size])

    def pick(ids: tuple[str, ...], count: int, index: int | None, missing: str) -> str:
        return missing if index is None or count == 0 else ids[index % count]

    replica_views = []
    for i, (d_index, n_index, g, ready) in enumerate(replicas):
        d = pick(DEP_IDS, len(deployment_views), d_index, "gone")
        n = pick(NODE_IDS, len(node_views), n_index, "ghost")
        memory = by_id[d].memory_bytes if d in by_id else GIB
        replica_views.append(ReplicaView(f"r{i}", d, n, memory, gpus_of(d, n, g), ready))
    return Snapshot(
        site_views, node_views, deployment_views, tuple(replica_views), frozenset(cooling)
    )


snapshots = st.builds(
    build,
    sites_st,
    st.lists(node_st, min_size=1, max_size=len(NODE_IDS)),
    st.lists(deployment_st, min_size=1, max_size=len(DEP_IDS)),
    st.lists(replica_st, max_size=8),
    st.sets(st.tuples(st.sampled_from(DEP_IDS), st.sampled_from(NODE_IDS)), max_size=4),
)


@st.composite
def evolved(draw: st.DrawFn) -> Snapshot:
    """A snapshot the planner satisfied, then changed as fleets change: site power, node health
    and cordons, GPUs quarantined, replica counts, tiers, regions, readiness."""
    s = draw(snapshots)
    s = apply(s, plan(s))
    sites = tuple(
        SiteView(x.id, x.region, draw(st.sampled_from((x.power, x.power, *PowerState))))
        for x in s.sites
    )
    nodes = tuple(
        NodeView(
            n.id,
            n.site,
            n.memory_bytes,
            tuple(
                GpuView(g.index, g.name, g.memory_bytes, draw(mostly(g.quarantined, True)))
                for g in n.gpus
            ),
            draw(mostly(n.schedulable, not n.schedulable)),
            draw(mostly(n.cordoned, not n.cordoned)),
            n.holds,
        )
        for n in s.nodes
    )
    deployments = tuple(
        DeploymentView(
            d.id,
            draw(mostly(d.replicas, max(0, d.replicas - 1), d.replicas + 1)),
            d.memory_bytes,
            d.tensor_parallel_size,
            d.gpu_only,
            d.gpu_type,
            draw(mostly(d.regions, frozenset({"eu"}), frozenset({"us"}))),
            draw(mostly(d.tier, *Tier)),
            d.source,
        )
        for d in s.deployments
    )
    replicas = tuple(
        ReplicaView(r.id, r.deployment_id, r.node_id, r.memory_bytes, r.gpus, draw(st.booleans()))
        for r in s.replicas
    )
    return Snapshot(sites, nodes, deployments, replicas, s.cooling)


# Random snapshots (most replicas in them are invalid) and evolved ones (most are valid).
scenes = snapshots | evolved()

PROPERTY = settings(max_examples=200, deadline=None)


def share(r: ReplicaView) -> int:
    return -(-r.memory_bytes // max(1, len(r.gpus)))


@PROPERTY
@given(scenes)
def test_never_over_commits_a_gpu_or_a_cpu_nodes_memory(s: Snapshot) -> None:
    after = apply(s, plan(s))
    nodes = {n.id: n for n in s.nodes}
    used: Counter[tuple[str, int]] = Counter()
    for r in after.replicas:
        for g in r.gpus or (-1,):
            used[(r.node_id, g)] += share(r)
    for (node_id, g), bytes_used in used.items():
        node = nodes[node_id]
        capacity = node.memory_bytes if g < 0 else {x.index: x for x in node.gpus}[g].memory_bytes
        assert bytes_used <= capacity, f"{node_id} GPU {g}: {bytes_used} > {capacity}"


@PROPERTY
@given(scenes)
def test_never_leaves_a_replica_on_a_quarantined_gpu(s: Snapshot) -> None:
    nodes = {n.id: n for n in s.nodes}
    for r in apply(s, plan(s)).replicas:
        quarantined = {g.index for g in nodes[r.node_id].gpus if g.quarantined}
        assert not quarantined & set(r.gpus)


@PROPERTY
@given(scenes)
def test_every_replica_after_the_plan_meets_every_constraint(s: Snapshot) -> None:
    sites = {x.id: x for x in s.sites}
    nodes = {n.id: n for n in s.nodes}
    deployments = {d.id: d for d in s.deployments}
    for r in apply(s, plan(s)).replicas:
        d = deployments[r.deployment_id]
        node = nodes[r.node_id]
        site = sites[node.site]
        assert node.schedulable
        assert site.power != PowerState.DRAINING
        flex_leaves = (PowerState.CURTAILED, PowerState.FLEX_PAUSED)
        assert not (site.power in flex_leaves and d.tier == Tier.FLEX)
        assert not d.regions or site.region in d.regions
        if node.gpus:
            gpus = {g.index: g for g in node.gpus}
            assert len(r.gpus) == d.tensor_parallel_size == len(set(r.gpus))
            assert all(g in gpus and d.wants(gpus[g].name) for g in r.gpus)
        else:
            assert r.gpus == ()
            assert d.cpu_ok


@PROPERTY
@given(scenes)
def test_new_replicas_go_only_to_uncordoned_nodes_of_active_sites_not_cooling(
    s: Snapshot,
) -> None:
    """Active sites, or for firm work sites that pause only flex work."""
    sites = {x.id: x for x in s.sites}
    nodes = {n.id: n for n in s.nodes}
    tiers = {d.id: d.tier for d in s.deployments}
    for x in plan(s).places:
        node = nodes[x.node_id]
        assert not node.cordoned
        takes = {PowerState.ACTIVE} | (
            {PowerState.FLEX_PAUSED} if tiers[x.deployment_id] == Tier.FIRM else set()
        )
        assert sites[node.site].power in takes
        assert (x.deployment_id, x.node_id) not in s.cooling


@PROPERTY
@given(scenes)
def test_replica_counts_add_up_to_the_wanted_count(s: Snapshot) -> None:
    """Kept + placed never exceeds `replicas`; with the unplaced count it is exactly `replicas`."""
    p = plan(s)
    removed = [r.replica_id for r in p.removes]
    assert len(removed) == len(set(removed)), "a replica removed twice"
    after = apply(s, p)
    for d in s.deployments:
        running = sum(1 for r in after.replicas if r.deployment_id == d.id)
        unplaced = sum(u.count for u in p.unplaced if u.deployment_id == d.id)
        assert running <= d.replicas
        assert running + unplaced == d.replicas


@PROPERTY
@given(scenes)
def test_a_satisfied_snapshot_yields_an_empty_plan(s: Snapshot) -> None:
    """Applying the plan then planning again changes nothing: one pass does all it can."""
    after = apply(s, plan(s))
    assert plan(after).empty
    # And a replica that is where it should be is left alone when it turns ready.
    ready = Snapshot(
        after.sites,
        after.nodes,
        after.deployments,
        tuple(
            ReplicaView(r.id, r.deployment_id, r.node_id, r.memory_bytes, r.gpus, True)
            for r in after.replicas
        ),
        after.cooling,
    )
    assert plan(ready).empty


@PROPERTY
@given(scenes, st.randoms(use_true_random=False))
def test_the_plan_does_not_depend_on_input_order(s: Snapshot, rng: random.Random) -> None:
    sites, nodes = list(s.sites), list(s.nodes)
    deployments, replicas = list(s.deployments), list(s.replicas)
    for items in (sites, nodes, deployments, replicas):
        rng.shuffle(items)
    other = Snapshot(tuple(sites), tuple(nodes), tuple(deployments), tuple(replicas), s.cooling)
    assert plan(other) == plan(s)


@PROPERTY
@given(scenes)
def test_the_same_snapshot_gives_the_same_plan(s: Snapshot) -> None:
    first: Plan = plan(s)
    assert plan(s) == first
