"""Rolling a deployment to a new generation (a new model, engine, GPUs or regions): old replicas
are replaced a few at a time and ready capacity never falls below the deployment's size while
there is room to surge."""

import dataclasses

from hashgrid.scheduler import Plan, Remove, Snapshot, plan

from support.scheduler import GIB, apply, cpu, dep, gpu, rep, site, snap


def all_ready(s: Snapshot) -> Snapshot:
    """The snapshot once every replica's engine came up."""
    return dataclasses.replace(
        s, replicas=tuple(dataclasses.replace(r, ready=True) for r in s.replicas)
    )


def roll(s: Snapshot, passes: int = 12) -> tuple[Snapshot, list[Plan], list[int]]:
    """Plan and apply until nothing is left to do, every replica turning ready between passes;
    the ready replicas right after each pass (before the new ones come up)."""
    plans, ready = [], []
    for _ in range(passes):
        p = plan(s)
        if p.empty:
            return s, plans, ready
        plans.append(p)
        after = apply(s, p)  # new replicas still starting, removed ones gone
        ready.append(sum(r.ready for r in after.replicas))
        s = all_ready(after)
    raise AssertionError("rolling did not settle")


def test_a_new_generation_replaces_every_replica_one_surge_at_a_time() -> None:
    old = [rep(f"old{i}", "d", n, ready=True) for i, n in enumerate(("a", "b", "c"))]
    start = snap([cpu(n) for n in "abcd"], [dep(replicas=3, generation=1)], old)

    first = plan(start)
    assert len(first.places) == 1, "one new replica beyond the three, no more"
    assert first.removes == [], "no old replica goes before a new one is ready"

    end, plans, ready = roll(start)
    assert {r.generation for r in end.replicas} == {1}
    assert len(end.replicas) == 3
    assert min(ready) >= 3, f"ready capacity fell below the deployment's size: {ready}"
    reasons = {x.reason for p in plans for x in p.removes}
    assert reasons == {"replaced by generation 1"}


def test_old_replicas_that_are_not_ready_go_at_once() -> None:
    s = snap(
        [cpu("a"), cpu("b")],
        [dep(replicas=2, generation=1)],
        [rep("starting", "d", "a"), rep("serving", "d", "b", ready=True)],
    )
    p = plan(s)
    assert p.removes == [Remove("starting", "replaced by generation 1")]


def test_with_no_room_to_surge_one_old_replica_makes_room_at_a_time() -> None:
    """The node fits two replicas: the only way forward is to replace one in place."""
    old = [rep("old0", "d", "a", ready=True), rep("old1", "d", "a", ready=True)]
    start = snap([cpu("a", memory=2 * GIB)], [dep(replicas=2, generation=1)], old)
    first = plan(start)
    assert first.removes == [
        Remove("old0", "replaced in place: no room for a new replica beside it")
    ]
    end, _, ready = roll(start)
    assert {r.generation for r in end.replicas} == {1}
    assert len(end.replicas) == 2
    assert min(ready) >= 1, "never more than one replica down"


def test_a_generation_that_cannot_run_anywhere_leaves_the_old_one_serving() -> None:
    old = [rep("old0", "d", "a", gpus=(0,), ready=True)]
    s = snap(
        [gpu("a", count=1)],
        [dep(replicas=1, generation=1, gpu_type="B200")],  # no such GPU in the fleet
        old,
    )
    p = plan(s)
    assert p.removes == []
    assert p.places == []
    assert [u.count for u in p.unplaced] == [1]


def test_an_old_replica_on_a_lost_node_goes_like_any_other() -> None:
    s = snap(
        [cpu("a", schedulable=False), cpu("b")],
        [dep(replicas=1, generation=1)],
        [rep("old0", "d", "a", ready=True)],
    )
    p = plan(s)
    assert p.removes == [Remove("old0", "node not schedulable")]
    assert [x.node_id for x in p.places] == ["b"]


def test_an_old_replica_outside_new_regions_stays_until_replaced() -> None:
    """Changing regions is a new generation: the old replica serves until the new is ready."""
    s = snap(
        [cpu("a", site="us"), cpu("b", site="me")],
        [dep(replicas=1, generation=1, regions=["me-central"])],
        [rep("old0", "d", "a", ready=True)],
        sites=[site("us", "us-south"), site("me", "me-central")],
    )
    p = plan(s)
    assert p.removes == []
    assert [x.node_id for x in p.places] == ["b"]
