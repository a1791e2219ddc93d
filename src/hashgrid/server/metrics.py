"""The control plane's Prometheus metrics, served at `GET /metrics`.

Each app has its own `CollectorRegistry` (no module-level collectors), so several apps in one
process, as in tests, never share a counter.
"""

from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from hashgrid.contracts.states import NodeStatus
from hashgrid.server.agents.service import known_nodes
from hashgrid.server.deployments.loads import ReplicaLoads
from hashgrid.server.state import get_state

WRITE_STATEMENTS = ("insert", "update", "delete")
HEARTBEAT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.db_writes = Counter(
            "hashgrid_db_writes",
            "INSERT, UPDATE and DELETE statements sent to the database.",
            ["statement"],
            registry=self.registry,
        )
        for statement in WRITE_STATEMENTS:
            self.db_writes.labels(statement)
        self.heartbeats = Counter(
            "hashgrid_heartbeats", "Heartbeats accepted from nodes.", registry=self.registry
        )
        self.heartbeat_seconds = Histogram(
            "hashgrid_heartbeat_seconds",
            "Time to handle a heartbeat, from the credential check to the answer.",
            buckets=HEARTBEAT_BUCKETS,
            registry=self.registry,
        )
        self.nodes = Gauge("hashgrid_nodes", "Nodes by status.", ["status"], registry=self.registry)
        # Engine loads as nodes last reported them, for each fresh report; labelled with the
        # reporting node and the replica it named (as reported: not checked against placement).
        self.replica_requests = Gauge(
            "hashgrid_replica_requests",
            "Requests an engine reported, by state (running, waiting).",
            ["node", "replica", "state"],
            registry=self.registry,
        )
        self.replica_kv_cache_usage = Gauge(
            "hashgrid_replica_kv_cache_usage",
            "Fraction of its KV cache an engine reported in use.",
            ["node", "replica"],
            registry=self.registry,
        )

    def set_loads(self, loads: ReplicaLoads) -> None:
        """Replace the load gauges with the fresh reports in `loads`."""
        self.replica_requests.clear()
        self.replica_kv_cache_usage.clear()
        for node, replica, load in loads.fresh():
            if load.running is not None:
                self.replica_requests.labels(node, replica, "running").set(load.running)
            if load.waiting is not None:
                self.replica_requests.labels(node, replica, "waiting").set(load.waiting)
            if load.kv_cache_usage is not None:
                self.replica_kv_cache_usage.labels(node, replica).set(load.kv_cache_usage)

    def count_writes(self, engine: AsyncEngine) -> None:
        """Count every write statement `engine` sends (a hook on its sync engine)."""

        def before_cursor_execute(
            _conn: Any,
            _cursor: Any,
            statement: str,
            _parameters: Any,
            _context: Any,
            _executemany: bool,
        ) -> None:
            verb = statement.lstrip()[:6].lower()
            if verb in WRITE_STATEMENTS:
                self.db_writes.labels(verb).inc()

        event.listen(engine.sync_engine, "before_cursor_execute", before_cursor_execute)

    def install(self, app: FastAPI) -> None:
        """Keep these metrics on `app` and serve them at /metrics."""
        app.state.hashgrid_metrics = self
        app.include_router(router)


def server_metrics(request: Request) -> ServerMetrics:
    metrics = request.app.state.hashgrid_metrics
    assert isinstance(metrics, ServerMetrics)
    return metrics


router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: database writes, heartbeats and their handling time, nodes by status,
    and the engine loads nodes reported (by node and replica id).

    No authentication, as with most exporters: the figures are counts and timings, with no
    names, addresses or secrets. Where even those should stay private, keep the control plane's
    port off the public network or refuse /metrics at the proxy in front of it.
    """
    own = server_metrics(request)
    known = known_nodes(request)
    await known.refresh()  # a query only when something changed since the last read
    counts = known.counts()
    for status in NodeStatus:
        own.nodes.labels(status.value).set(counts.get(status.value, 0))
    own.set_loads(get_state(request).loads)
    return Response(generate_latest(own.registry), media_type=CONTENT_TYPE_LATEST)
