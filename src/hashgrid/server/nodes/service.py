"""Registering nodes and moving them between ready and lost."""

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.common.secrets import hash_secret, new_secret
from hashgrid.contracts.agent import Fingerprint
from hashgrid.contracts.states import ACTIVE_REPLICA, NodeStatus, ReplicaStatus
from hashgrid.server.db.base import new_id, utcnow
from hashgrid.server.deployments.tables import Replica
from hashgrid.server.errors import NotFound
from hashgrid.server.nodes.schemas import NodeOut
from hashgrid.server.nodes.tables import Node
from hashgrid.server.sites.tables import Site

NODE_CREDENTIAL_PREFIX = "hg_node_"


def capacity_of(fingerprint: Fingerprint) -> int:
    """Memory replicas may use: all accelerator memory, or RAM on a CPU-only node."""
    if fingerprint.gpus:
        return sum(g.memory_total_bytes for g in fingerprint.gpus)
    return fingerprint.memory_total_bytes


async def _free_name(session: AsyncSession, wanted: str) -> str:
    taken = set(
        (await session.scalars(select(Node.name).where(Node.name.startswith(wanted)))).all()
    )
    if wanted not in taken:
        return wanted
    n = 2
    while f"{wanted}-{n}" in taken:
        n += 1
    return f"{wanted}-{n}"


async def add(
    session: AsyncSession, node_id: str, site: Site, name: str, fingerprint: Fingerprint
) -> tuple[Node, str]:
    """A new node at `site` and its credential (in the caller's transaction)."""
    secret = new_secret(NODE_CREDENTIAL_PREFIX)
    node = Node(
        id=node_id,
        name=await _free_name(session, name),
        site_id=site.id,
        credential_hash=hash_secret(secret),
        fingerprint=fingerprint.model_dump(mode="json"),
        capacity_bytes=capacity_of(fingerprint),
    )
    session.add(node)
    return node, secret


def fresh_node_id() -> str:
    return new_id()


async def set_status(session: AsyncSession, node: Node, status: NodeStatus) -> bool:
    """Move `node` to `status`; a lost node loses its active replicas. True if anything changed."""
    if node.status == status:
        return False
    now = utcnow()
    node.status = status
    node.status_changed_at = now
    node.last_seen_at = now
    if status == NodeStatus.LOST:
        await session.execute(
            update(Replica)
            .where(Replica.node_id == node.id)
            .where(Replica.status.in_([*ACTIVE_REPLICA, ReplicaStatus.STOPPING]))
            .values(status=ReplicaStatus.LOST, reason="node lost", updated_at=now)
        )
    await session.commit()
    return True


async def update_fingerprint(session: AsyncSession, node: Node, fingerprint: Fingerprint) -> None:
    """Store a changed fingerprint (memory free figures excluded, or every beat would write)."""
    stable = fingerprint.model_dump(mode="json", exclude={"memory_available_bytes"})
    stored = {k: v for k, v in node.fingerprint.items() if k != "memory_available_bytes"}
    if stable != stored:
        node.fingerprint = fingerprint.model_dump(mode="json")
        node.capacity_bytes = capacity_of(fingerprint)
        await session.commit()


async def list_all(session: AsyncSession) -> Sequence[tuple[Node, Site]]:
    rows = await session.execute(
        select(Node, Site).join(Site, Node.site_id == Site.id).order_by(Node.name)
    )
    return [(n, s) for n, s in rows]


async def get(session: AsyncSession, id_or_name: str) -> tuple[Node, Site]:
    row = (
        await session.execute(
            select(Node, Site)
            .join(Site, Node.site_id == Site.id)
            .where((Node.id == id_or_name) | (Node.name == id_or_name))
        )
    ).first()
    if row is None:
        raise NotFound(f"no node {id_or_name!r}")
    node, site = row
    return node, site


def to_out(node: Node, site: Site) -> NodeOut:
    return NodeOut(
        id=node.id,
        name=node.name,
        site=site.name,
        status=NodeStatus(node.status),
        capacity_bytes=node.capacity_bytes,
        fingerprint=Fingerprint.model_validate(node.fingerprint),
        joined_at=node.joined_at,
        status_changed_at=node.status_changed_at,
    )
