"""The control plane's side of the agent protocol."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.contracts.agent import Assignment, JoinRequest, JoinResponse, ModelSpec
from hashgrid.contracts.states import ACTIVE_REPLICA
from hashgrid.server.catalog.tables import CatalogModel
from hashgrid.server.deployments.tables import Deployment, Replica
from hashgrid.server.nodes import service as nodes
from hashgrid.server.sites import service as sites


async def join(session: AsyncSession, body: JoinRequest, heartbeat_s: float) -> JoinResponse:
    """Spend the join token and create the node in one transaction: a bad token creates nothing."""
    node_id = nodes.fresh_node_id()
    site = await sites.consume_join_token(session, body.join_token, node_id)
    node, credential = await nodes.add(session, node_id, site, body.name, body.fingerprint)
    await session.commit()
    return JoinResponse(
        node_id=node.id,
        node_name=node.name,
        site=site.name,
        credential=credential,
        heartbeat_interval_s=heartbeat_s,
    )


async def assignments_of(session: AsyncSession, node_id: str) -> list[Assignment]:
    rows = await session.execute(
        select(Replica, Deployment, CatalogModel)
        .join(Deployment, Replica.deployment_id == Deployment.id)
        .join(CatalogModel, Deployment.model_id == CatalogModel.id)
        .where(Replica.node_id == node_id, Replica.status.in_(ACTIVE_REPLICA))
        .order_by(Replica.id)
    )
    return [
        Assignment(
            replica_id=replica.id,
            deployment=deployment.name,
            engine=model.engine,
            model=ModelSpec(
                name=deployment.name,
                source=model.source,
                format=model.format,
                context_length=model.context_length,
            ),
        )
        for replica, deployment, model in rows
    ]
