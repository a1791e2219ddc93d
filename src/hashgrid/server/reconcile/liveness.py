"""Liveness: a node that stops beating is lost once its TTL passes, and its replicas with it."""

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hashgrid.contracts.states import NodeStatus
from hashgrid.server.changes import Changes
from hashgrid.server.nodes import service as nodes
from hashgrid.server.nodes.liveness import Liveness
from hashgrid.server.nodes.tables import Node

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
        if lost:
            await self._changes.bump()
