"""Placement: snapshot the database, let the pure scheduler decide, write its plan."""

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hashgrid.contracts.states import ACTIVE_REPLICA, NodeStatus, ReplicaStatus
from hashgrid.scheduler import DeploymentView, NodeView, Plan, ReplicaView, Snapshot, plan
from hashgrid.server.catalog.tables import CatalogModel
from hashgrid.server.changes import Changes
from hashgrid.server.db.base import utcnow
from hashgrid.server.deployments.service import replica_memory_bytes
from hashgrid.server.deployments.tables import Deployment, Replica
from hashgrid.server.nodes.tables import Node
from hashgrid.server.sites.tables import Site


class PlacementReconciler:
    name = "placement"

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], changes: Changes, retry_after_s: float
    ) -> None:
        self._sessions = sessions
        self._changes = changes
        self._retry_after = timedelta(seconds=retry_after_s)

    async def reconcile(self) -> None:
        async with self._sessions() as session:
            snapshot, memory = await self._snapshot(session)
            decided = plan(snapshot)
            if await self._apply(session, decided, memory):
                await self._changes.bump()

    async def _snapshot(self, session: AsyncSession) -> tuple[Snapshot, dict[str, int]]:
        nodes = await session.execute(select(Node, Site).join(Site, Node.site_id == Site.id))
        deployments = await session.execute(
            select(Deployment, CatalogModel).join(
                CatalogModel, Deployment.model_id == CatalogModel.id
            )
        )
        memory = {d.id: replica_memory_bytes(m) for d, m in deployments}
        deployment_views = tuple(
            DeploymentView(d.id, memory[d.id], d.replicas, frozenset(d.regions))
            for d in (await session.scalars(select(Deployment))).all()
        )
        active = (
            await session.scalars(select(Replica).where(Replica.status.in_(ACTIVE_REPLICA)))
        ).all()
        # A failed replica stays where it is while its agent restarts it; one still failed
        # after the retry window is given up on there (its agent's backoff outgrew the window).
        given_up_before = utcnow() - self._retry_after
        failed = [r for r in active if r.status == ReplicaStatus.FAILED]
        snapshot = Snapshot(
            nodes=tuple(
                NodeView(
                    n.id,
                    s.name,
                    s.region,
                    n.capacity_bytes,
                    schedulable=n.status == NodeStatus.READY and n.drain_deadline is None,
                    cordoned=n.cordoned,
                )
                for n, s in nodes
            ),
            deployments=deployment_views,
            replicas=tuple(
                ReplicaView(
                    r.id,
                    r.deployment_id,
                    r.node_id,
                    r.memory_bytes,
                    r.status == ReplicaStatus.READY,
                    failed_too_long=r.status == ReplicaStatus.FAILED
                    and r.updated_at <= given_up_before,
                )
                for r in active
            ),
            cooling=frozenset((r.deployment_id, r.node_id) for r in failed),
        )
        return snapshot, memory

    async def _apply(self, session: AsyncSession, decided: Plan, memory: dict[str, int]) -> bool:
        now = utcnow()
        for place in decided.places:
            session.add(
                Replica(
                    deployment_id=place.deployment_id,
                    node_id=place.node_id,
                    memory_bytes=memory[place.deployment_id],
                    status=ReplicaStatus.SCHEDULED,
                )
            )
        for remove in decided.removes:
            replica = await session.get(Replica, remove.replica_id)
            if replica is None:
                continue
            # The failure that made placement move a replica stays readable after the move.
            replica.reason = (
                f"{remove.reason}; last failure: {replica.reason}"
                if replica.status == ReplicaStatus.FAILED and replica.reason
                else remove.reason
            )
            # A replica its agent never acted on has no engine to stop.
            replica.status = (
                ReplicaStatus.STOPPED
                if replica.status == ReplicaStatus.SCHEDULED
                else ReplicaStatus.STOPPING
            )
            replica.updated_at = now
        conditions = {
            u.deployment_id: f"{u.count} replica(s) pending: {u.reason}" for u in decided.unplaced
        }
        conditions_changed = False
        for deployment in (await session.scalars(select(Deployment))).all():
            condition = conditions.get(deployment.id)
            if deployment.condition != condition:
                deployment.condition = condition
                conditions_changed = True
        await session.commit()
        return not decided.empty or conditions_changed
