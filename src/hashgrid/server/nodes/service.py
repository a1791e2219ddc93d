"""Registering nodes, moving them between ready and lost, and recording their verification."""

from typing import Any

from pydantic import ValidationError
from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.capacity.verdict import Verdict, judge
from hashgrid.common.secrets import hash_secret, new_secret
from hashgrid.contracts.agent import (
    Fingerprint,
    GpuInfo,
    Holding,
    Verification,
    VerificationReport,
)
from hashgrid.contracts.api.common import ReliabilityOut
from hashgrid.contracts.api.nodes import NodeOut
from hashgrid.contracts.states import (
    ACTIVE_REPLICA,
    NodeAdmission,
    NodePower,
    NodeStatus,
    ReplicaStatus,
)
from hashgrid.server import pages
from hashgrid.server.changes import Changes
from hashgrid.server.db.base import new_id, utcnow
from hashgrid.server.deployments.tables import Replica
from hashgrid.server.errors import NotFound
from hashgrid.server.nodes import admission
from hashgrid.server.nodes.tables import Node
from hashgrid.server.sites.tables import Site

NODE_CREDENTIAL_PREFIX = "hg_node_"


def capacity_of(fingerprint: Fingerprint) -> int:
    """Memory replicas may use: the VRAM of GPUs not quarantined, or RAM on a node with no GPU.

    A node whose every GPU is quarantined offers nothing; it does not fall back to RAM.
    """
    if not fingerprint.gpus:
        return fingerprint.memory_total_bytes
    return sum(g.memory_total_bytes for g in fingerprint.gpus if not g.quarantined)


def stored_gpus(fingerprint: Any) -> list[GpuInfo]:
    """The GPUs of a stored fingerprint; an entry that does not parse is left out."""
    raw = fingerprint.get("gpus") if isinstance(fingerprint, dict) else None
    gpus = []
    for entry in raw if isinstance(raw, list) else ():
        try:
            gpus.append(GpuInfo.model_validate(entry))
        except ValidationError:
            continue
    return gpus


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
    """Move `node` to `status`; a lost node loses its active replicas, one back is powered on
    (woken, or powered by hand). True if anything changed."""
    if node.status == status:
        return False
    now = utcnow()
    node.status = status
    node.status_changed_at = now
    node.last_seen_at = now
    if status == NodeStatus.READY and node.power != NodePower.ON:
        node.power, node.power_changed_at = NodePower.ON, now
    if status == NodeStatus.LOST:
        await session.execute(
            update(Replica)
            .where(Replica.node_id == node.id)
            .where(Replica.status.in_([*ACTIVE_REPLICA, ReplicaStatus.STOPPING]))
            .values(status=ReplicaStatus.LOST, reason="node lost", updated_at=now)
        )
    await session.commit()
    return True


# Readings that move all the time; storing each change would write on every report.
VOLATILE_NODE_FIELDS = frozenset({"memory_available_bytes", "disk_free_bytes"})
VOLATILE_GPU_FIELDS = frozenset({"memory_free_bytes", "power_draw_w", "temperature_c"})


def _stable(fingerprint: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in fingerprint.items() if k not in VOLATILE_NODE_FIELDS}
    out["gpus"] = [
        {k: v for k, v in gpu.items() if k not in VOLATILE_GPU_FIELDS}
        for gpu in fingerprint.get("gpus", [])
    ]
    return out


async def update_fingerprint(
    session: AsyncSession, node: Node, fingerprint: Fingerprint, changes: Changes
) -> None:
    """Store the fingerprint when something other than a moving reading changed (a GPU
    quarantined, a driver upgraded, memory added), and judge the stored benchmark against it:
    a node may not claim hardware after its verification that the benchmark contradicts."""
    reported = fingerprint.model_dump(mode="json")
    if _stable(reported) != _stable(node.fingerprint):
        node.fingerprint = reported
        node.capacity_bytes = capacity_of(fingerprint)
        verdict = _judge_again(node, fingerprint)
        await session.commit()
        if verdict is not None:
            await admission.follow_verdict(session, node, verdict, fresh=False, changes=changes)


async def update_holdings(
    session: AsyncSession, node: Node, holdings: list[dict[str, Any]]
) -> None:
    """Store what the node's model store holds (`Holding`s as JSON) when it changed."""
    if node.holdings != holdings:
        node.holdings = holdings
        await session.commit()


async def record_verification(
    session: AsyncSession, node: Node, report: VerificationReport, changes: Changes
) -> tuple[Verification, bool]:
    """Judge `report` against the node's stored fingerprint, store the verdict and class, and
    admit or refuse the node on it (`admission.follow_verdict`).

    The class is derived here, from what the server holds, never taken from the agent.
    Returns the verdict and whether the node's capacity class changed.
    """
    verdict = judge(Fingerprint.model_validate(node.fingerprint), report)
    verification = Verification(
        benchmark=report.benchmark,
        error=report.error,
        capacity_class=verdict.capacity_class,
        problems=verdict.problems,
        notes=verdict.notes,
        verified_at=utcnow(),
    )
    changed = node.capacity_class != verdict.capacity_class
    node.verification = verification.model_dump(mode="json")
    node.capacity_class = verdict.capacity_class
    await session.commit()
    await admission.follow_verdict(session, node, verdict, fresh=True, changes=changes)
    return verification, changed


def _judge_again(node: Node, fingerprint: Fingerprint) -> Verdict | None:
    """Re-derive a verified node's class and problems from its new fingerprint (a GPU
    quarantined since, say), with the benchmark it last reported; the new verdict, if any."""
    if node.verification is None:
        return None
    stored = Verification.model_validate(node.verification)
    verdict = judge(fingerprint, stored)
    node.verification = stored.model_copy(
        update={
            "capacity_class": verdict.capacity_class,
            "problems": verdict.problems,
            "notes": verdict.notes,
        }
    ).model_dump(mode="json")
    node.capacity_class = verdict.capacity_class
    return verdict


ORDER = pages.Order(pages.By(Node.name))


async def list_visible(
    session: AsyncSession,
    scope: str | None,
    cursor: str | None,
    limit: int,
    site: str | None = None,
    status: NodeStatus | None = None,
) -> pages.Items[Row[Node, Site]]:
    """A page of the nodes at the sites of operator `scope` (None: every node), by name; only
    those at the site named `site`, or in `status`, if given."""
    query = select(Node, Site).join(Site, Node.site_id == Site.id)
    if scope is not None:
        query = query.where(Site.operator_id == scope)
    if site is not None:
        query = query.where(Site.name == site)
    if status is not None:
        query = query.where(Node.status == status)
    return await pages.rows(session, query, ORDER, cursor, limit)


async def get(
    session: AsyncSession, id_or_name: str, scope: str | None = None
) -> tuple[Node, Site]:
    """A node by id or name, if its site's operator is `scope` (None: any)."""
    query = (
        select(Node, Site)
        .join(Site, Node.site_id == Site.id)
        .where((Node.id == id_or_name) | (Node.name == id_or_name))
    )
    if scope is not None:
        query = query.where(Site.operator_id == scope)
    row = (await session.execute(query)).first()
    if row is None:
        raise NotFound(f"no node {id_or_name!r}")
    node, site = row
    return node, site


def to_out(node: Node, site: Site, reliability: ReliabilityOut | None = None) -> NodeOut:
    return NodeOut(
        id=node.id,
        name=node.name,
        site=site.name,
        status=NodeStatus(node.status),
        capacity_bytes=node.capacity_bytes,
        fingerprint=Fingerprint.model_validate(node.fingerprint),
        joined_at=node.joined_at,
        status_changed_at=node.status_changed_at,
        cordoned=node.cordoned,
        power=NodePower(node.power),
        power_refusals=node.power_refusals,
        drain_deadline=node.drain_deadline,
        holdings=(
            None if node.holdings is None else [Holding.model_validate(h) for h in node.holdings]
        ),
        capacity_class=node.capacity_class,
        verification=(
            Verification.model_validate(node.verification) if node.verification else None
        ),
        admission=NodeAdmission(node.admission),
        admission_reason=node.admission_reason,
        reliability=reliability,
    )


async def revoke(session: AsyncSession, node: Node) -> None:
    """Make `node`'s credential worthless and mark it lost with its replicas.

    The stored hash becomes that of a fresh secret nobody holds, so the old credential matches
    nothing. The caller must then drop the node from its credential cache.
    """
    node.credential_hash = hash_secret(new_secret(NODE_CREDENTIAL_PREFIX))
    if not await set_status(session, node, NodeStatus.LOST):
        await session.commit()


async def rotate_credential(session: AsyncSession, node_id: str, old_hash: str) -> str | None:
    """A new credential for the node whose credential hashes to `old_hash`, which stops working.

    None when `old_hash` is no longer the node's (revoked, or rotated by a concurrent call).
    """
    secret = new_secret(NODE_CREDENTIAL_PREFIX)
    rotated = await session.scalar(
        update(Node)
        .where(Node.id == node_id, Node.credential_hash == old_hash)
        .values(credential_hash=hash_secret(secret))
        .returning(Node.id)
    )
    await session.commit()
    return secret if rotated is not None else None
