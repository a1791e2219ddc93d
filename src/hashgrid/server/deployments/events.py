"""A deployment's events: placements, removals, replicas ready or failed, why replicas wait.

Written on transitions only (never per heartbeat), read newest first, and aged out after
`KEEP` by the placement reconciler.
"""

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.server.db.base import utcnow
from hashgrid.server.deployments.tables import DeploymentEvent

KEEP = timedelta(days=7)
SHOWN = 20  # events a deployment shows
MESSAGE_MAX = 500  # characters kept of a message (an engine's log tail is cut to its first line)


def record(session: AsyncSession, deployment_id: str, message: str) -> None:
    """Add an event in the caller's transaction."""
    first_line = message.strip().splitlines()[0] if message.strip() else message
    session.add(DeploymentEvent(deployment_id=deployment_id, message=first_line[:MESSAGE_MAX]))


async def recent(session: AsyncSession, deployment_id: str) -> Sequence[DeploymentEvent]:
    """The newest events of a deployment, newest first."""
    query = (
        select(DeploymentEvent)
        .where(DeploymentEvent.deployment_id == deployment_id)
        .order_by(DeploymentEvent.id.desc())
        .limit(SHOWN)
    )
    return (await session.scalars(query)).all()


async def age_out(session: AsyncSession) -> None:
    """Delete events older than `KEEP` (in the caller's transaction)."""
    await session.execute(delete(DeploymentEvent).where(DeploymentEvent.at < utcnow() - KEEP))
