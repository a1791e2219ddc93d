"""The gateway view: every deployed model with its ready replicas, and the live API keys."""

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.contracts.gateway import GatewayView, KeyEntry, RoutedModel, RouteReplica
from hashgrid.contracts.states import NodeStatus, ReplicaStatus
from hashgrid.server.deployments.tables import Deployment, Replica
from hashgrid.server.keys.tables import ApiKey
from hashgrid.server.nodes.tables import Node
from hashgrid.server.sites.tables import Site


async def view(session: AsyncSession, revision: int) -> GatewayView:
    ready = await session.execute(
        select(Replica, Node, Site)
        .join(Node, Replica.node_id == Node.id)
        .join(Site, Node.site_id == Site.id)
        .where(Replica.status == ReplicaStatus.READY, Node.status == NodeStatus.READY)
        .where(Node.drain_deadline.is_(None))  # a draining node takes no new requests
        .where(Replica.endpoint.is_not(None))
        .order_by(Replica.id)
    )
    by_deployment: dict[str, list[RouteReplica]] = defaultdict(list)
    for replica, node, site in ready:
        assert replica.endpoint is not None
        by_deployment[replica.deployment_id].append(
            RouteReplica(
                replica_id=replica.id,
                endpoint=replica.endpoint,
                node_id=node.id,
                site=site.name,
                region=site.region,
            )
        )
    deployments = (await session.scalars(select(Deployment).order_by(Deployment.name))).all()
    keys = (await session.scalars(select(ApiKey).where(ApiKey.revoked_at.is_(None)))).all()
    return GatewayView(
        revision=revision,
        models=[
            RoutedModel(name=d.name, deployment=d.id, replicas=by_deployment[d.id])
            for d in deployments
        ],
        keys=[KeyEntry(key_id=k.id, key_hash=k.key_hash, customer_id=k.customer_id) for k in keys],
    )
