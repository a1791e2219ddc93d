"""Placement prefers reliable nodes (score at least `RELIABLE`) for firm and reserved replicas,
and uses a less reliable one only when no reliable one fits; flex replicas ignore scores."""

from dataclasses import replace

from hashgrid.scheduler import NodeView, Reservation, Tier, plan

from support.scheduler import GIB, cpu, dep, snap


def scored(node_id: str, score: float | None, memory: int = 10 * GIB) -> NodeView:
    return replace(cpu(node_id, memory=memory), score=score)


def test_a_firm_replica_goes_to_the_reliable_node() -> None:
    # "a" sorts first and fits best alike; only its score sets it apart.
    p = plan(snap([scored("a", 0.3), scored("b", 0.95)], [dep(tier=Tier.FIRM)]))
    assert [x.node_id for x in p.places] == ["b"]


def test_a_reserved_replica_goes_to_the_reliable_node() -> None:
    held = Reservation("c1", 1)
    p = plan(snap([scored("a", 0.3), scored("b", None)], [dep(replicas=0, reservations=[held])]))
    assert [(x.node_id, x.contract_id) for x in p.places] == [("b", "c1")]


def test_an_unreliable_node_takes_firm_replicas_when_no_other_fits() -> None:
    nodes = [scored("a", 0.3), scored("b", 0.95, memory=GIB)]
    p = plan(snap(nodes, [dep(tier=Tier.FIRM, replicas=2)]))
    assert sorted(x.node_id for x in p.places) == ["a", "b"]
    assert p.unplaced == []


def test_flex_replicas_ignore_scores() -> None:
    p = plan(snap([scored("a", 0.3), scored("b", 0.95)], [dep(tier=Tier.FLEX)]))
    assert [x.node_id for x in p.places] == ["a"]
