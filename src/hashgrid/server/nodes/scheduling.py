"""Whether a node takes replicas: cordon (no new ones), drain (none at all, by a deadline)."""

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.server.db.base import utcnow
from hashgrid.server.nodes.tables import Node

# How long an engine may take to finish in-flight requests when its replica is stopped.
DEFAULT_STOP_GRACE_S = 30.0


async def cordon(session: AsyncSession, node: Node) -> None:
    node.cordoned = True
    await session.commit()


async def uncordon(session: AsyncSession, node: Node) -> None:
    """Take replicas again; this also ends a drain."""
    node.cordoned = False
    node.drain_deadline = None
    await session.commit()


async def drain(session: AsyncSession, node: Node, deadline_s: float) -> None:
    """Cordon, route no new requests here, and stop the node's replicas within `deadline_s`."""
    node.cordoned = True
    node.drain_deadline = utcnow() + timedelta(seconds=deadline_s)
    await session.commit()


def stop_grace_s(node: Node) -> float:
    """How long the node's agent should let an engine finish before killing it."""
    if node.drain_deadline is None:
        return DEFAULT_STOP_GRACE_S
    return max(1.0, (node.drain_deadline - utcnow()).total_seconds())
