"""Engine loads that agents report with their heartbeats, kept in memory only.

Every heartbeat carries the load of each ready replica on its node (running and waiting
requests, KV-cache fill; None where the engine does not say, as llama-cpp-python). The latest report
of a node replaces its one before, stamped with the time it arrived; it goes stale
`stale_after_s` later (three heartbeat intervals), and a stale or missing report reads as no
load at all. Nothing is written to the database: loads change every beat and are worthless a few
beats later, and a beat must stay free of SQL.

A node may only speak for its own replicas. Reports are kept per node and read by (node,
replica), where the reader takes the node from the replica's row: a report a node makes for a
replica the database places elsewhere is accepted with the beat and never read. That costs the
beat nothing (checking ownership when the report arrives would need the replica rows), and
the memory a node can fill is bounded by one beat's report.
"""

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from hashgrid.contracts.agent import ReplicaLoad
from hashgrid.contracts.api.deployments import ReplicaLoadOut

# A report is fresh for this many heartbeat intervals after it arrived.
STALE_AFTER_BEATS = 3


class ReplicaLoads:
    """Each node's latest report of its replicas' engine loads."""

    def __init__(self, stale_after_s: float, clock: Callable[[], float] = time.time) -> None:
        self._stale_after_s = stale_after_s
        self._clock = clock
        self._by_node: dict[str, tuple[float, dict[str, ReplicaLoad]]] = {}

    def record(self, node_id: str, loads: list[ReplicaLoad]) -> None:
        """`node_id`'s report, arrived now; it replaces the node's report before."""
        if loads or node_id in self._by_node:
            self._by_node[node_id] = (self._clock(), {r.replica_id: r for r in loads})

    def get(self, node_id: str, replica_id: str) -> ReplicaLoadOut | None:
        """The load `node_id` last reported for `replica_id`, while fresh."""
        entry = self._by_node.get(node_id)
        if entry is None or self._clock() - entry[0] > self._stale_after_s:
            return None
        load = entry[1].get(replica_id)
        return None if load is None else _out(load, entry[0])

    def fresh(self) -> Iterator[tuple[str, str, ReplicaLoadOut]]:
        """(node id, replica id, load) of every fresh report; stale reports are dropped."""
        now = self._clock()
        for node_id, (at, loads) in list(self._by_node.items()):
            if now - at > self._stale_after_s:
                del self._by_node[node_id]
                continue
            for replica_id, load in loads.items():
                yield node_id, replica_id, _out(load, at)


def _out(load: ReplicaLoad, at: float) -> ReplicaLoadOut:
    return ReplicaLoadOut(
        running=load.running,
        waiting=load.waiting,
        kv_cache_usage=load.kv_cache_usage,
        reported_at=datetime.fromtimestamp(at, UTC),
    )
