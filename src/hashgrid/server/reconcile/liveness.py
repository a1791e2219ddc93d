"""Liveness: a node that stops beating is lost once its TTL passes, and its replicas with it; a
node woken from standby that never went down is on once it has outlived a TTL ready
(power/standby.py)."""

from datetime import timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hashgrid.contracts.states import NodeStatus
from hashgrid.server.changes import Changes
from hashgrid.server.nodes import service as nodes
from hashgrid.server.nodes.liveness import Liveness
from hashgrid.server.nodes.tables import Node
from hashgrid.server.power import standby

log = structlog.get_logger("hashgrid.server.liveness")


class LivenessReconciler:
    name = "liveness"

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], changes: Changes, liveness: Liveness
    ) -> None:
        self._sessions = sessions
        self._changes = changes
        self._liveness = liveness

    async def reconcile(self) -> None:
        async with self._sessions() as session:
            # Ids only: at thousands of nodes, loading whole rows (fingerprints and all) every
            # pass held the event loop long enough to show in every heartbeat's latency.
            ready = await session.scalars(select(Node.id).where(Node.status == NodeStatus.READY))
            lost = self._liveness.expired(ready.all())
            for node_id in lost:
                node = await session.get(Node, node_id)
                if node is not None and await nodes.set_status(session, node, NodeStatus.LOST):
                    log.warning("node lost", node=node.name, ttl_s=self._liveness.ttl_s)
            ttl = timedelta(seconds=self._liveness.ttl_s)
            awake = await standby.awake_if_up(session, ttl)
        if lost or awake:
            await self._changes.bump()
