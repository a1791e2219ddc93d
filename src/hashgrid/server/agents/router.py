from typing import Annotated

from fastapi import APIRouter, Header, Query

from hashgrid.contracts.agent import (
    PROTOCOL_VERSION,
    Assignments,
    Heartbeat,
    HeartbeatAck,
    JoinRequest,
    JoinResponse,
    ReplicaReport,
)
from hashgrid.contracts.states import NodeStatus
from hashgrid.server.agents import service
from hashgrid.server.auth import CallingNode
from hashgrid.server.deployments import service as deployments
from hashgrid.server.deployments.tables import Replica
from hashgrid.server.errors import Invalid, NotFound
from hashgrid.server.nodes import service as nodes
from hashgrid.server.state import Session, State


def _check_protocol(version: int | None) -> None:
    if version is not None and version != PROTOCOL_VERSION:
        raise Invalid(f"agent protocol {version} is not served here; this server speaks 1")


ProtocolHeader = Annotated[int | None, Header(alias="x-hashgrid-agent-protocol")]
router = APIRouter(prefix="/api/v1/agent", tags=["agent protocol"])


@router.post("/join")
async def join(body: JoinRequest, session: Session, state: State) -> JoinResponse:
    """Trade a one-time site join token for a node credential."""
    _check_protocol(body.protocol_version)
    response = await service.join(session, body, state.settings.heartbeat_interval_s)
    state.liveness.beat(response.node_id)
    await state.changes.bump()
    return response


@router.post("/heartbeat")
async def heartbeat(
    body: Heartbeat, node: CallingNode, session: Session, state: State, protocol: ProtocolHeader
) -> HeartbeatAck:
    """Keep the node alive; a lost node that beats again is ready again."""
    _check_protocol(protocol)
    state.liveness.beat(node.id)
    if body.fingerprint is not None:
        await nodes.update_fingerprint(session, node, body.fingerprint)
    if await nodes.set_status(session, node, NodeStatus.READY):
        await state.changes.bump()
    return HeartbeatAck(
        node_id=node.id,
        heartbeat_interval_s=state.settings.heartbeat_interval_s,
        assignments_revision=state.changes.revision,
    )


@router.get("/assignments")
async def assignments(
    node: CallingNode,
    session: Session,
    state: State,
    protocol: ProtocolHeader,
    after: Annotated[int, Query(description="Answer once the revision exceeds this")] = 0,
    wait: Annotated[float, Query(ge=0, description="Seconds to hold the poll open")] = 0,
) -> Assignments:
    """The replicas this node should run, answered when newer than `after` (a long poll)."""
    _check_protocol(protocol)
    node_id = node.id
    await session.close()  # hold no database connection while the poll waits
    revision = await state.changes.wait_newer(after, min(wait, state.settings.long_poll_max_s))
    return Assignments(
        revision=revision, assignments=await service.assignments_of(session, node_id)
    )


@router.put("/replicas/{replica_id}/state")
async def report_replica(
    replica_id: str,
    body: ReplicaReport,
    node: CallingNode,
    session: Session,
    state: State,
    protocol: ProtocolHeader,
) -> None:
    """Report what became of one of this node's replicas."""
    _check_protocol(protocol)
    replica = await session.get(Replica, replica_id)
    if replica is None or replica.node_id != node.id:
        raise NotFound(f"node has no replica {replica_id!r}")
    await deployments.report(session, replica, body.status, body.endpoint, body.reason)
    await state.changes.bump()
