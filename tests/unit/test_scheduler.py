"""The pure placement planner: where missing replicas go, which replicas go away, and why not."""

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

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

MIB = 2**20
GIB = 2**30


def node(
    id: str,
    site: str = "s1",
    region: str = "eu",
    capacity: int = 10 * GIB,
    schedulable: bool = True,
    cordoned: bool = False,
) -> NodeView:
    return NodeView(id, site, region, capacity, schedulable, cordoned)


def dep(id: str = "d", memory: int = GIB, replicas: int = 1, regions: tuple[str, ...] = ()):
    return DeploymentView(id, memory, replicas, frozenset(regions))


def rep(id: str, deployment: str, node_id: str, memory: int = GIB, ready: bool = False):
    return ReplicaView(id, deployment, node_id, memory, ready)


def snap(nodes=(), deployments=(), replicas=(), cooling=()) -> Snapshot:
    return Snapshot(tuple(nodes), tuple(deployments), tuple(replicas), frozenset(cooling))


def placed_nodes(p: Plan) -> list[str]:
    return [x.node_id for x in p.places]


# --- placing -------------------------------------------------------------------------------


def test_places_missing_replica_on_the_only_node_that_fits() -> None:
    p = plan(snap([node("small", capacity=GIB // 2), node("big")], [dep(memory=GIB)]))
    assert p.places == [Place("d", "big")]
    assert p.removes == []
    assert p.unplaced == []


def test_places_only_the_missing_count() -> None:
    p = plan(snap([node("a"), node("b")], [dep(replicas=3)], [rep("r1", "d", "a")]))
    assert len(p.places) == 2
    assert p.removes == []


def test_exact_fit_is_allowed() -> None:
    p = plan(snap([node("a", capacity=GIB)], [dep(memory=GIB)]))
    assert p.places == [Place("d", "a")]


def test_spreads_a_deployment_across_sites_before_nodes() -> None:
    # Two nodes at site s1, one at s2: the second replica must go to s2, not to s1's other node.
    nodes = [node("a1", site="s1"), node("a2", site="s1"), node("b1", site="s2")]
    p = plan(snap(nodes, [dep(replicas=2)]))
    assert sorted(placed_nodes(p)) == ["a1", "b1"]


def test_prefers_a_site_without_replicas_of_the_deployment() -> None:
    nodes = [node("a1", site="s1"), node("a2", site="s1"), node("b1", site="s2", capacity=2 * GIB)]
    p = plan(snap(nodes, [dep(replicas=2)], [rep("r1", "d", "a1")]))
    assert p.places == [Place("d", "b1")]


def test_spreads_across_nodes_within_a_site() -> None:
    nodes = [node("a"), node("b")]
    p = plan(snap(nodes, [dep(replicas=2)]))
    assert sorted(placed_nodes(p)) == ["a", "b"]


def test_stacks_on_one_node_when_it_is_the_only_fit() -> None:
    p = plan(snap([node("a", capacity=3 * GIB)], [dep(replicas=3)]))
    assert placed_nodes(p) == ["a", "a", "a"]


def test_packs_into_the_tightest_fit_among_equals() -> None:
    nodes = [node("roomy", capacity=8 * GIB), node("tight", capacity=2 * GIB)]
    p = plan(snap(nodes, [dep(memory=GIB)]))
    assert p.places == [Place("d", "tight")]


def test_tightest_fit_counts_memory_already_used() -> None:
    # "big" has more capacity but less left after its existing replica of another deployment.
    nodes = [node("big", capacity=8 * GIB), node("mid", capacity=4 * GIB)]
    other = dep("other", memory=7 * GIB)
    p = plan(snap(nodes, [dep(memory=GIB), other], [rep("o1", "other", "big", 7 * GIB)]))
    assert p.places == [Place("d", "big")]


def test_ties_break_by_node_id() -> None:
    p = plan(snap([node("z"), node("m"), node("b")], [dep()]))
    assert p.places == [Place("d", "b")]


def test_memory_placed_for_one_deployment_counts_against_the_next() -> None:
    nodes = [node("a", capacity=GIB)]
    p = plan(snap(nodes, [dep("d1"), dep("d2")]))
    assert p.places == [Place("d1", "a")]
    assert p.unplaced == [Unplaced("d2", 1, "no node with 1024 MiB free")]


def test_respects_regions() -> None:
    nodes = [node("eu1", region="eu", capacity=GIB), node("us1", region="us", capacity=9 * GIB)]
    p = plan(snap(nodes, [dep(regions=("us",))]))
    assert p.places == [Place("d", "us1")]
    p = plan(snap(nodes, [dep(regions=("eu", "ap"))]))
    assert p.places == [Place("d", "eu1")]


def test_no_regions_means_anywhere() -> None:
    p = plan(snap([node("x", region="ap")], [dep(regions=())]))
    assert p.places == [Place("d", "x")]


def test_skips_non_schedulable_nodes() -> None:
    nodes = [node("down", capacity=2 * GIB, schedulable=False), node("up", capacity=9 * GIB)]
    p = plan(snap(nodes, [dep()]))
    assert p.places == [Place("d", "up")]


def test_skips_cooling_pairs_but_not_other_deployments_there() -> None:
    nodes = [node("a", capacity=2 * GIB), node("b", capacity=9 * GIB)]
    p = plan(snap(nodes, [dep("d1"), dep("d2")], cooling=[("d1", "a")]))
    assert Place("d1", "b") in p.places
    assert Place("d2", "a") in p.places


# --- removing ------------------------------------------------------------------------------


def test_scale_down_removes_non_ready_replicas_first() -> None:
    replicas = [
        rep("r1", "d", "a", ready=True),
        rep("r2", "d", "a", ready=False),
        rep("r3", "d", "b", ready=True),
        rep("r4", "d", "b", ready=False),
    ]
    p = plan(snap([node("a"), node("b")], [dep(replicas=2)], replicas))
    assert sorted(p.removes, key=lambda r: r.replica_id) == [
        Remove("r2", "scaled down"),
        Remove("r4", "scaled down"),
    ]
    assert p.places == []


def test_scale_down_removes_ready_ones_only_when_not_enough_non_ready() -> None:
    replicas = [
        rep("r1", "d", "a", ready=True),
        rep("r2", "d", "a"),
        rep("r3", "d", "a", ready=True),
    ]
    p = plan(snap([node("a")], [dep(replicas=1)], replicas))
    removed = {r.replica_id for r in p.removes}
    assert len(removed) == 2
    assert "r2" in removed


def test_scale_to_zero_removes_every_replica() -> None:
    replicas = [rep("r1", "d", "a", ready=True), rep("r2", "d", "a")]
    p = plan(snap([node("a")], [dep(replicas=0)], replicas))
    assert {r.replica_id for r in p.removes} == {"r1", "r2"}
    assert p.unplaced == []


def test_removes_replicas_of_deleted_deployments() -> None:
    p = plan(snap([node("a")], [], [rep("r1", "gone", "a")]))
    assert p.removes == [Remove("r1", "deployment deleted")]


def test_removes_replicas_on_unschedulable_or_unknown_nodes_and_replaces_them() -> None:
    nodes = [node("down", schedulable=False), node("up")]
    replicas = [rep("r1", "d", "down", ready=True), rep("r2", "d", "ghost")]
    p = plan(snap(nodes, [dep(replicas=2)], replicas))
    assert sorted(p.removes, key=lambda r: r.replica_id) == [
        Remove("r1", "node not schedulable"),
        Remove("r2", "node not schedulable"),
    ]
    assert placed_nodes(p) == ["up", "up"]


def test_a_failed_replica_its_agent_restarts_keeps_its_place() -> None:
    """A failed replica counts as placed while its agent restarts it: no second one appears."""
    p = plan(snap([node("a"), node("b")], [dep()], [rep("r1", "d", "a")], cooling=[("d", "a")]))
    assert p.empty


def test_a_replica_failed_too_long_moves_to_another_node() -> None:
    failing = ReplicaView("r1", "d", "a", GIB, failed_too_long=True)
    p = plan(snap([node("a", capacity=20 * GIB), node("b")], [dep()], [failing]))
    assert p.removes == [Remove("r1", "kept failing on its node")]
    assert p.places == [Place("d", "b")]  # not back on "a", though it has more room


def test_a_replica_failed_too_long_is_not_replaced_on_its_node_in_that_pass() -> None:
    failing = ReplicaView("r1", "d", "a", GIB, failed_too_long=True)
    p = plan(snap([node("a")], [dep()], [failing]))
    assert p.removes == [Remove("r1", "kept failing on its node")]
    assert p.places == []
    assert "failed lately" in p.unplaced[0].reason


def test_keeps_replicas_that_already_fit() -> None:
    p = plan(snap([node("a"), node("b")], [dep(replicas=1)], [rep("r1", "d", "a")]))
    assert p.empty
    assert p == Plan()


def test_memory_of_removed_replicas_is_freed_for_placement() -> None:
    # The replica on the lost node is not counted; the deleted deployment's memory is freed.
    nodes = [node("a", capacity=GIB)]
    p = plan(snap(nodes, [dep("new")], [rep("old", "gone", "a")]))
    assert p.removes == [Remove("old", "deployment deleted")]
    assert p.places == [Place("new", "a")]


# --- unplaced reasons ----------------------------------------------------------------------


def test_unplaced_when_no_node_is_ready() -> None:
    p = plan(snap([node("a", schedulable=False)], [dep(replicas=2)]))
    assert p.places == []
    assert p.unplaced == [Unplaced("d", 2, "no ready node")]


def test_unplaced_when_no_node_at_all() -> None:
    assert plan(snap([], [dep()])).unplaced == [Unplaced("d", 1, "no ready node")]


def test_unplaced_names_the_regions_when_none_has_a_node() -> None:
    p = plan(snap([node("a", region="eu")], [dep(regions=("us", "ap"))]))
    assert p.unplaced == [Unplaced("d", 1, "no ready node in regions ap, us")]


def test_unplaced_when_every_eligible_node_is_cooling() -> None:
    p = plan(snap([node("a"), node("b")], [dep()], cooling=[("d", "a"), ("d", "b")]))
    assert len(p.unplaced) == 1
    assert p.unplaced[0].count == 1
    assert "failed lately" in p.unplaced[0].reason


def test_unplaced_says_how_much_memory_is_needed() -> None:
    p = plan(snap([node("a", capacity=GIB)], [dep(memory=3 * GIB + 5 * MIB)]))
    assert p.unplaced == [Unplaced("d", 1, "no node with 3077 MiB free")]


def test_unplaced_counts_only_the_replicas_that_did_not_fit() -> None:
    p = plan(snap([node("a", capacity=2 * GIB)], [dep(replicas=5)]))
    assert len(p.places) == 2
    assert p.unplaced == [Unplaced("d", 3, "no node with 1024 MiB free")]


def test_unplaced_is_not_a_change() -> None:
    p = plan(snap([], [dep()]))
    assert p.unplaced
    assert p.empty


# --- determinism ---------------------------------------------------------------------------


def test_same_plan_whatever_the_input_order() -> None:
    nodes = [
        node(f"n{i}", site=f"s{i % 3}", region="eu" if i % 2 else "us", capacity=(i + 1) * GIB)
        for i in range(8)
    ]
    deployments = [dep(f"d{i}", memory=(i % 3 + 1) * GIB, replicas=i % 4) for i in range(5)]
    replicas = [rep(f"r{i}", f"d{i % 6}", f"n{i % 9}", ready=i % 2 == 0) for i in range(10)]
    expected = plan(snap(nodes, deployments, replicas))
    rng = random.Random(1)
    for _ in range(20):
        rng.shuffle(nodes)
        rng.shuffle(deployments)
        rng.shuffle(replicas)
        assert plan(snap(nodes, deployments, replicas)) == expected


# --- properties over random snapshots ------------------------------------------------------

SITES = ("s1", "s2", "s3")
REGIONS = ("eu", "us")
NODE_IDS = ("n1", "n2", "n3", "n4")
DEP_IDS = ("d1", "d2", "d3")


NODE_PARTS = st.tuples(
    st.sampled_from(SITES),
    st.sampled_from(REGIONS),
    st.integers(0, 6),
    st.booleans(),
    st.booleans(),
)
DEPLOYMENT_PARTS = st.tuples(
    st.integers(1, 3), st.integers(0, 4), st.sets(st.sampled_from((*REGIONS, "ap")), max_size=2)
)
REPLICA_PARTS = st.tuples(
    st.sampled_from((*DEP_IDS, "gone")), st.sampled_from((*NODE_IDS, "ghost")), st.booleans()
)


def _build(nodes, deployments, replicas, cooling) -> Snapshot:
    node_views = tuple(
        NodeView(NODE_IDS[i], site, region, units * GIB, ok, cordoned)
        for i, (site, region, units, ok, cordoned) in enumerate(nodes)
    )
    deployment_views = tuple(
        DeploymentView(DEP_IDS[i], units * GIB, count, frozenset(regions))
        for i, (units, count, regions) in enumerate(deployments)
    )
    memory = {d.id: d.memory_bytes for d in deployment_views}
    replica_views = tuple(
        ReplicaView(f"r{i}", did, nid, memory.get(did, GIB), ready)
        for i, (did, nid, ready) in enumerate(replicas)
    )
    return Snapshot(node_views, deployment_views, replica_views, frozenset(cooling))


# A few sites, nodes and deployments; replicas may name deleted deployments or unknown nodes.
snapshots = st.builds(
    _build,
    st.lists(NODE_PARTS, max_size=len(NODE_IDS)),
    st.lists(DEPLOYMENT_PARTS, max_size=len(DEP_IDS)),
    st.lists(REPLICA_PARTS, max_size=6),
    st.sets(st.tuples(st.sampled_from(DEP_IDS), st.sampled_from(NODE_IDS)), max_size=4),
)


def apply(s: Snapshot, p: Plan) -> Snapshot:
    """The snapshot after the plan is carried out: placements become (not ready) replicas."""
    removed = {r.replica_id for r in p.removes}
    memory = {d.id: d.memory_bytes for d in s.deployments}
    kept = [r for r in s.replicas if r.id not in removed]
    added = [
        ReplicaView(f"new{i}", x.deployment_id, x.node_id, memory[x.deployment_id])
        for i, x in enumerate(p.places)
    ]
    return Snapshot(s.nodes, s.deployments, (*kept, *added), s.cooling)


FAST = settings(max_examples=60, deadline=None)


@FAST
@given(snapshots)
def test_property_never_overcommits_a_node_it_places_on(s: Snapshot) -> None:
    p = plan(s)
    after = apply(s, p)
    nodes = {n.id: n for n in s.nodes}
    used: Counter[str] = Counter()
    for r in after.replicas:
        used[r.node_id] += r.memory_bytes
    for nid in set(placed_nodes(p)):
        assert used[nid] <= nodes[nid].capacity_bytes


@FAST
@given(snapshots)
def test_property_places_only_where_allowed(s: Snapshot) -> None:
    nodes = {n.id: n for n in s.nodes}
    deployments = {d.id: d for d in s.deployments}
    for x in plan(s).places:
        n, d = nodes[x.node_id], deployments[x.deployment_id]
        assert n.schedulable
        assert not n.cordoned
        assert not d.regions or n.region in d.regions
        assert (d.id, n.id) not in s.cooling


@FAST
@given(snapshots)
def test_property_replica_counts_add_up_to_the_wanted_count(s: Snapshot) -> None:
    """Kept + placed never exceeds `replicas`; with the unplaced count it is exactly `replicas`."""
    p = plan(s)
    removed = {r.replica_id for r in p.removes}
    nodes = {n.id: n for n in s.nodes}
    for d in s.deployments:
        kept = sum(
            1
            for r in s.replicas
            if r.deployment_id == d.id
            and r.id not in removed
            and r.node_id in nodes
            and nodes[r.node_id].schedulable
        )
        placed = sum(1 for x in p.places if x.deployment_id == d.id)
        unplaced = sum(u.count for u in p.unplaced if u.deployment_id == d.id)
        assert kept + placed <= d.replicas
        assert kept + placed + unplaced == d.replicas
    removes = [r.replica_id for r in p.removes]
    assert len(removes) == len(set(removes)), "a replica removed twice"
    # Every replica that survives belongs to a live deployment on a schedulable node.
    for r in s.replicas:
        if r.id not in removed:
            assert r.deployment_id in {d.id for d in s.deployments}
            assert r.node_id in nodes
            assert nodes[r.node_id].schedulable


@FAST
@given(snapshots)
def test_property_applying_the_plan_then_replanning_yields_an_empty_plan(s: Snapshot) -> None:
    """A satisfied snapshot plans nothing: one pass does all that can be done."""
    assert plan(apply(s, plan(s))).empty


@FAST
@given(snapshots, st.randoms(use_true_random=False))
def test_property_plan_does_not_depend_on_input_order(s: Snapshot, rng: random.Random) -> None:
    shuffled = [list(s.nodes), list(s.deployments), list(s.replicas)]
    for items in shuffled:
        rng.shuffle(items)
    other = Snapshot(tuple(shuffled[0]), tuple(shuffled[1]), tuple(shuffled[2]), s.cooling)
    assert plan(other) == plan(s)


def test_applying_a_plan_with_a_scale_down_then_replanning_yields_an_empty_plan() -> None:
    nodes = [node("n1", capacity=GIB), node("n2", capacity=GIB)]
    deployments = [dep("a", replicas=1), dep("b", replicas=1)]
    replicas = [rep("b1", "b", "n1"), rep("b2", "b", "n2")]
    s = snap(nodes, deployments, replicas)
    p = plan(s)
    assert plan(apply(s, p)).empty


# --- cordon and drain ----------------------------------------------------------------------


def test_a_cordoned_node_keeps_its_replicas_but_takes_no_new_ones() -> None:
    nodes = [node("a", cordoned=True), node("b")]
    p = plan(snap(nodes, [dep(replicas=2)], [rep("r1", "d", "a")]))
    assert p.removes == []
    assert p.places == [Place("d", "b")]


def test_a_deployment_waits_when_every_ready_node_is_cordoned() -> None:
    p = plan(snap([node("a", cordoned=True)], [dep()]))
    assert p.places == []
    assert p.unplaced == [Unplaced("d", 1, "every ready node is cordoned")]


def test_a_draining_node_loses_its_replicas_to_other_nodes() -> None:
    """Draining marks a node unschedulable: its replicas are removed and placed elsewhere."""
    nodes = [node("a", schedulable=False, cordoned=True), node("b")]
    p = plan(snap(nodes, [dep()], [rep("r1", "d", "a")]))
    assert p.removes == [Remove("r1", "node not schedulable")]
    assert p.places == [Place("d", "b")]
