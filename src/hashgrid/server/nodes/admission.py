"""Admission: whether a node may take customer traffic, the one place that moves it.

Only `admitted` nodes are placed on (`reconcile/placement.py: node_view`) and have their replicas
in the gateways' view (`feed/service.py`); placement stops the replicas of a node that leaves
`admitted`. The verification verdict admits or refuses (`nodes/service.py:
record_verification`), spot-checks quarantine, and `hashgrid nodes verify` sends any node back
to `pending`, which also asks its agent to benchmark again (the heartbeat ack's `verify`). The
edges are `contracts/states.py: NODE_ADMISSION_TRANSITIONS`.
"""

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.capacity.verdict import Verdict
from hashgrid.contracts.states import NodeAdmission, admission_can_move
from hashgrid.server.changes import Changes
from hashgrid.server.errors import Conflict
from hashgrid.server.nodes.tables import Node

log = structlog.get_logger("hashgrid.server.admission")

REASON_MAX = 2000  # what `nodes.admission_reason` holds


async def set_admission(
    session: AsyncSession,
    node: Node,
    state: NodeAdmission,
    reason: str | None,
    *,
    changes: Changes,
) -> bool:
    """Move `node` to `state` for `reason`, commit, and bump the revision that placement, the
    gateways' view and the node's heartbeat ack follow. True if the state or reason changed.

    Raises `Conflict` for a move `NODE_ADMISSION_TRANSITIONS` does not allow.
    """
    current = NodeAdmission(node.admission)
    if not admission_can_move(current, state):
        raise Conflict(f"node {node.name!r} is {current}; it cannot become {state}")
    reason = reason[:REASON_MAX] if reason else None
    if current == state and node.admission_reason == reason:
        return False
    node.admission = state
    node.admission_reason = reason
    await session.commit()
    await changes.bump()
    if current != state:
        log.info("node admission", node=node.name, was=current, now=state, reason=reason)
    return True


async def follow_verdict(
    session: AsyncSession, node: Node, verdict: Verdict, *, fresh: bool, changes: Changes
) -> bool:
    """Admit or refuse `node` as `verdict` says, with its reason. `fresh`: the verdict is on a
    benchmark just reported; otherwise on the stored one, judged again against a changed
    fingerprint, which settles nothing for a node awaiting a new benchmark. A quarantined node
    stays quarantined: only a re-verification asked for frees it."""
    current = NodeAdmission(node.admission)
    if current == NodeAdmission.QUARANTINED or (current == NodeAdmission.PENDING and not fresh):
        return False
    wanted = NodeAdmission.ADMITTED if verdict.passed else NodeAdmission.REFUSED
    return await set_admission(session, node, wanted, verdict.reason(), changes=changes)


async def request_verification(
    session: AsyncSession, node: Node, asked_by: str, *, changes: Changes
) -> None:
    """Send `node` back to pending; its agent hears in its next heartbeat ack to benchmark
    again, and its replicas move elsewhere meanwhile."""
    await set_admission(
        session,
        node,
        NodeAdmission.PENDING,
        f"re-verification asked by {asked_by}; its agent benchmarks again at its next heartbeat",
        changes=changes,
    )
