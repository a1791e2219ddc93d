"""The server's in-memory engine loads: per node, fresh for a few beats, read by owner."""

from hashgrid.contracts.agent import ReplicaLoad
from hashgrid.server.deployments.loads import ReplicaLoads


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_report_is_read_for_its_node_and_replica_until_it_goes_stale() -> None:
    clock = Clock()
    loads = ReplicaLoads(stale_after_s=6.0, clock=clock)
    loads.record("n1", [ReplicaLoad(replica_id="r1", running=2, waiting=1, kv_cache_usage=0.5)])
    got = loads.get("n1", "r1")
    assert got is not None
    assert (got.running, got.waiting, got.kv_cache_usage) == (2, 1, 0.5)
    assert got.reported_at.timestamp() == clock.now
    clock.now += 6.0
    assert loads.get("n1", "r1") is not None
    clock.now += 0.1
    assert loads.get("n1", "r1") is None
    assert list(loads.fresh()) == []


def test_a_report_for_another_nodes_replica_is_never_read() -> None:
    loads = ReplicaLoads(stale_after_s=6.0, clock=Clock())
    loads.record("owner", [ReplicaLoad(replica_id="r1", running=1, waiting=0)])
    loads.record("intruder", [ReplicaLoad(replica_id="r1", running=99, waiting=99)])
    got = loads.get("owner", "r1")  # readers pass the node the replica's row names
    assert got is not None
    assert got.running == 1


def test_a_new_report_replaces_the_nodes_last_one() -> None:
    loads = ReplicaLoads(stale_after_s=6.0, clock=Clock())
    loads.record("n1", [ReplicaLoad(replica_id="r1", running=1), ReplicaLoad(replica_id="r2")])
    loads.record("n1", [ReplicaLoad(replica_id="r2", running=4)])
    assert loads.get("n1", "r1") is None  # no longer serving
    r2 = loads.get("n1", "r2")
    assert r2 is not None
    assert r2.running == 4
    assert [(n, r) for n, r, _ in loads.fresh()] == [("n1", "r2")]


def test_a_replica_reported_without_figures_has_a_load_with_none() -> None:
    loads = ReplicaLoads(stale_after_s=6.0, clock=Clock())
    loads.record("n1", [ReplicaLoad(replica_id="r1")])  # llama.cpp
    got = loads.get("n1", "r1")
    assert got is not None
    assert (got.running, got.waiting, got.kv_cache_usage) == (None, None, None)
