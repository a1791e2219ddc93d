"""Compute contracts in the pure placement planner: reserved replicas come on top of a
deployment's on-demand count, are placed before any on-demand replica, are held to the
contract's terms (firm, its regions), and on-demand work never moves or scales them down."""

from collections import Counter
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from hashgrid.scheduler import (
    DeploymentView,
    Place,
    PowerState,
    ReplicaView,
    Reservation,
    SiteView,
    Snapshot,
    Tier,
    plan,
)

from support.scheduler import GIB, apply, cpu, dep, gpu, rep, site, snap


def held(contract: str, replicas: int = 1, regions: tuple[str, ...] = ()) -> Reservation:
    return Reservation(contract, replicas, frozenset(regions))


# --- units -----------------------------------------------------------------------------------


def test_reserved_replicas_come_on_top_of_the_on_demand_count() -> None:
    p = plan(snap([cpu("a"), cpu("b")], [dep(replicas=1, reservations=[held("c1", 2)])]))
    assert Counter(x.contract_id for x in p.places) == {"c1": 2, None: 1}


def test_reserved_replicas_are_placed_before_any_on_demand_replica() -> None:
    """One slot, asked for by a big firm on-demand deployment and a small flex one with a
    contract: the contract's replica takes it, whatever the usual order (firm, biggest)."""
    nodes = [cpu("n", memory=2 * GIB)]
    big = dep("a-big", memory=2 * GIB, tier=Tier.FIRM)
    reserved = dep("z-small", memory=2 * GIB, replicas=0, tier=Tier.FLEX, reservations=[held("c")])
    p = plan(snap(nodes, [big, reserved]))
    assert p.places == [Place("z-small", "n", (), "c")]
    assert [(u.deployment_id, u.contract_id) for u in p.unplaced] == [("a-big", None)]


def test_a_reserved_replica_that_waits_says_so() -> None:
    p = plan(snap([cpu("n", memory=GIB // 2)], [dep(replicas=0, reservations=[held("c", 2)])]))
    assert [(u.count, u.contract_id) for u in p.unplaced] == [(2, "c")]


def test_scaling_down_on_demand_keeps_every_reserved_replica() -> None:
    """The autoscaler takes the deployment to zero: the contract's replica stays, even not
    ready and on the more crowded site, where an on-demand one would be the first to go."""
    nodes = [cpu("a1", site="s1"), cpu("a2", site="s1"), cpu("b", site="s2")]
    d = dep(replicas=0, reservations=[held("c")])
    replicas = [
        rep("r-held", "d", "a1", contract="c"),
        rep("r-od1", "d", "a2", ready=True),
        rep("r-od2", "d", "b", ready=True),
    ]
    p = plan(snap(nodes, [d], replicas))
    assert sorted(r.replica_id for r in p.removes) == ["r-od1", "r-od2"]
    assert p.places == []


def test_a_reserved_replica_stays_on_a_curtailed_site_where_flex_work_leaves() -> None:
    nodes = [cpu("a", site="s1"), cpu("b", site="s2")]
    sites = [site("s1", power=PowerState.CURTAILED), site("s2")]
    d = dep(replicas=1, tier=Tier.FLEX, reservations=[held("c")])
    replicas = [rep("r-held", "d", "a", contract="c"), rep("r-od", "d", "a")]
    p = plan(snap(nodes, [d], replicas, sites=sites))
    assert [r.replica_id for r in p.removes] == ["r-od"]
    assert p.places == [Place("d", "b")]


def test_reserved_replicas_go_to_the_contracts_regions() -> None:
    nodes = [cpu("eu1", site="s-eu"), cpu("us1", site="s-us")]
    sites = [site("s-eu", "eu"), site("s-us", "us")]
    d = dep(replicas=0, regions=["eu", "us"], reservations=[held("c", 1, ("us",))])
    p = plan(snap(nodes, [d], sites=sites))
    assert p.places == [Place("d", "us1", (), "c")]
    # And one outside them moves there.
    moved = plan(snap(nodes, [d], [rep("r", "d", "eu1", contract="c")], sites=sites))
    assert [r.replica_id for r in moved.removes] == ["r"]
    assert moved.places == [Place("d", "us1", (), "c")]


def test_an_over_committed_gpu_loses_its_on_demand_replica_not_the_reserved_one() -> None:
    """Two replicas on one GPU that now holds only one (it shrank, as after a bad report): the
    reserved one stays although the on-demand one is ready and sorts first."""
    nodes = [gpu("n", count=1, memory=GIB)]
    d = dep(replicas=1, reservations=[held("c")])
    replicas = [
        rep("a-od", "d", "n", gpus=(0,), ready=True),
        rep("b-held", "d", "n", gpus=(0,), contract="c"),
    ]
    p = plan(snap(nodes, [d], replicas))
    assert [r.replica_id for r in p.removes] == ["a-od"]


def test_the_replicas_of_an_ended_contract_are_on_demand_again() -> None:
    """Its reservation gone from the deployment, its replica counts as any other: kept while
    the deployment wants it, scaled down when it does not."""
    nodes = [cpu("a")]
    replicas = [rep("r", "d", "a", ready=True, contract="gone")]
    assert plan(snap(nodes, [dep(replicas=1)], replicas)).empty
    assert [r.replica_id for r in plan(snap(nodes, [dep(replicas=0)], replicas)).removes] == ["r"]


# --- properties --------------------------------------------------------------------------------

SITES = (SiteView("s1", "eu"), SiteView("s2", "us"), SiteView("s3", "eu", PowerState.CURTAILED))
CONTRACTS = ("c1", "c2")

node_st = st.tuples(st.sampled_from(("s1", "s2", "s3")), st.integers(0, 6), st.booleans())
reservation_st = st.lists(
    st.tuples(st.integers(1, 3), st.sampled_from(((), ("eu",), ("us",)))), max_size=2
)
deployment_st = st.tuples(
    st.integers(0, 3),  # on-demand replicas
    st.sampled_from(list(Tier)),
    st.sampled_from(((), ("eu",), ("us",))),
    reservation_st,
)
replica_st = st.tuples(
    st.integers(0, 2),  # deployment
    st.integers(0, 4),  # node
    st.sampled_from((None, *CONTRACTS, "ended")),
    st.booleans(),
)


def build(nodes, deployments, replicas) -> Snapshot:  # type: ignore[no-untyped-def]
    """CPU nodes and deployments of 1 GiB replicas, so that a slot is a slot: with a scarce
    fleet, who gets the slots is the question."""
    node_views = tuple(
        cpu(f"n{i}", site, ram * GIB, schedulable=ok) for i, (site, ram, ok) in enumerate(nodes)
    )
    deployment_views = tuple(
        DeploymentView(
            f"d{i}",
            count,
            GIB,
            tier=tier,
            regions=frozenset(regions),
            reservations=tuple(
                Reservation(CONTRACTS[j], n, frozenset(where))
                for j, (n, where) in enumerate(reservations)
            ),
        )
        for i, (count, tier, regions, reservations) in enumerate(deployments)
    )
    replica_views = tuple(
        ReplicaView(
            f"r{i}",
            deployment_views[d % len(deployment_views)].id,
            node_views[n % len(node_views)].id,
            GIB,
            ready=ready,
            contract_id=contract,
        )
        for i, (d, n, contract, ready) in enumerate(replicas)
    )
    return Snapshot(SITES, node_views, deployment_views, replica_views)


snapshots = st.builds(
    build,
    st.lists(node_st, min_size=1, max_size=5),
    st.lists(deployment_st, min_size=1, max_size=3),
    st.lists(replica_st, max_size=8),
)
PROPERTY = settings(max_examples=300, deadline=None)


def reserved_of(s: Snapshot) -> dict[tuple[str, str], int]:
    return {(d.id, r.contract_id): r.replicas for d in s.deployments for r in d.reservations}


def held_by_contracts(s: Snapshot) -> dict[str, tuple[str, str]]:
    """The replicas each contract holds, by replica id: up to its count, ready ones first
    (more replicas placed for a contract than it reserves are on-demand ones)."""
    room = reserved_of(s)
    held = {}
    for r in sorted(s.replicas, key=lambda r: (not r.ready, r.id)):
        key = (r.deployment_id, r.contract_id or "")
        if room.get(key, 0) > 0:
            room[key] -= 1
            held[r.id] = key
    return held


@PROPERTY
@given(snapshots)
def test_each_contract_gets_its_count_and_on_demand_its_own(s: Snapshot) -> None:
    """A contract gets no more new replicas than it misses among those it keeps; after the
    plan it holds, with the replicas that wait, exactly its count; on-demand replicas are at
    most the deployment's count."""
    p = plan(s)
    after = apply(s, p)
    reserved = reserved_of(s)
    held = held_by_contracts(after)
    holding: Counter[tuple[str, str | None]] = Counter()
    for r in after.replicas:
        holding[held.get(r.id, (r.deployment_id, None))] += 1
    waiting: Counter[tuple[str, str | None]] = Counter()
    for u in p.unplaced:
        waiting[(u.deployment_id, u.contract_id)] += u.count
    placed = Counter((x.deployment_id, x.contract_id) for x in p.places)
    removed = {x.replica_id for x in p.removes}
    kept = replace(s, replicas=tuple(r for r in s.replicas if r.id not in removed))
    held_before = Counter(held_by_contracts(kept).values())
    for (d_id, contract), count in reserved.items():
        assert placed[(d_id, contract)] <= count - held_before[(d_id, contract)]
        assert holding[(d_id, contract)] + waiting[(d_id, contract)] == count
    for d in s.deployments:
        assert holding[(d.id, None)] <= d.replicas


@PROPERTY
@given(snapshots)
def test_a_satisfied_snapshot_with_contracts_yields_an_empty_plan(s: Snapshot) -> None:
    after = apply(s, plan(s))
    assert plan(after).empty


@PROPERTY
@given(snapshots, st.lists(st.integers(0, 4), min_size=3, max_size=3))
def test_on_demand_changes_never_remove_a_reserved_replica(s: Snapshot, counts: list[int]) -> None:
    """Placed and then left alone by the fleet, a contract's replicas stay whatever the
    autoscaler does to every deployment's on-demand count."""
    after = apply(s, plan(s))
    rescaled = Snapshot(
        after.sites,
        after.nodes,
        tuple(
            DeploymentView(
                d.id,
                counts[i],
                d.memory_bytes,
                tier=d.tier,
                regions=d.regions,
                reservations=d.reservations,
            )
            for i, d in enumerate(after.deployments)
        ),
        after.replicas,
    )
    assert not set(held_by_contracts(after)) & {x.replica_id for x in plan(rescaled).removes}


@PROPERTY
@given(snapshots)
def test_no_on_demand_replica_is_placed_while_a_reservation_it_could_have_had_waits(
    s: Snapshot,
) -> None:
    """Slots are alike here (1 GiB each), so an on-demand replica placed at a site whose nodes
    a waiting reservation may use took a slot that reservation needed."""
    p = plan(s)
    sites = {x.id: x for x in s.sites}
    nodes = {n.id: n for n in s.nodes}
    deployments = {d.id: d for d in s.deployments}
    waiting = [(deployments[u.deployment_id], u.contract_id) for u in p.unplaced if u.contract_id]
    for x in p.places:
        if x.contract_id is not None:
            continue
        region = sites[nodes[x.node_id].site].region
        for d, contract in waiting:
            where = next(r.regions for r in d.reservations if r.contract_id == contract)
            where = where or d.regions
            assert where, f"{x.deployment_id} placed on {x.node_id} while {d.id}/{contract} waits"
            assert region not in where, f"{x.deployment_id} took a slot {d.id}/{contract} needed"
