import random
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.contracts.agent import (
    PROTOCOL_VERSION,
    Assignments,
    Heartbeat,
    HeartbeatAck,
    JoinRequest,
    JoinResponse,
    MinerOrders,
    MinerResults,
    ReplicaReport,
    Verification,
    VerificationReport,
)
from hashgrid.server.agents import service
from hashgrid.server.auth import node_credentials
from hashgrid.server.deployments import service as deployments
from hashgrid.server.deployments.tables import Replica
from hashgrid.server.errors import Invalid, NotFound
from hashgrid.server.metrics import server_metrics
from hashgrid.server.nodes import scheduling
from hashgrid.server.nodes.scheduling import DEFAULT_STOP_GRACE_S
from hashgrid.server.nodes.tables import Node
from hashgrid.server.params import After, PathName, Wait
from hashgrid.server.policy import CallingNode
from hashgrid.server.power import reports as miner_reports
from hashgrid.server.power import service as power
from hashgrid.server.power import standby
from hashgrid.server.sites.tables import Site
from hashgrid.server.state import ServerState, Session, get_state


def _check_protocol(version: int | None) -> None:
    if version is not None and version != PROTOCOL_VERSION:
        raise Invalid(f"agent protocol {version} is not served here; this server speaks 1")


ProtocolHeader = Annotated[int | None, Header(alias="x-hashgrid-agent-protocol")]


# Dependencies here are coroutines: FastAPI runs a plain-function dependency in its thread pool,
# a hop that costs far more than the dependency itself on the agents' hot paths.


async def _now() -> float:
    return time.perf_counter()


async def _state(request: Request) -> ServerState:
    return get_state(request)


# Listed first among a route's parameters, it is resolved before the credential check.
Started = Annotated[float, Depends(_now)]
State = Annotated[ServerState, Depends(_state)]
router = APIRouter(prefix="/api/v1/agent", tags=["agent protocol"])


@router.post("/join")
async def join(body: JoinRequest, session: Session, state: State, request: Request) -> JoinResponse:
    """Trade a one-time site join token for a node credential."""
    _check_protocol(body.protocol_version)
    known = service.known_nodes(request)
    response = await service.join(session, body, state.settings.heartbeat_interval_s, known)
    state.liveness.beat(response.node_id)
    known.bumped(await state.changes.bump())
    return response


@router.post("/heartbeat")
async def heartbeat(
    started: Started,
    body: Heartbeat,
    node: CallingNode,
    state: State,
    request: Request,
    protocol: ProtocolHeader,
) -> HeartbeatAck:
    """Keep the node alive; a lost node that beats again is ready again. Note the engine loads
    the beat carries, in memory (a load for a replica that is not this node's is never read).

    Runs no SQL unless the node's status, stored fingerprint or holdings change.
    """
    _check_protocol(protocol)
    known = service.known_nodes(request)
    await service.heartbeat(state, known, node, body.fingerprint, body.holdings)
    state.loads.record(node.id, body.replicas)
    metrics = server_metrics(request)
    metrics.heartbeats.inc()
    metrics.heartbeat_seconds.observe(time.perf_counter() - started)
    return HeartbeatAck(
        node_id=node.id,
        heartbeat_interval_s=state.settings.heartbeat_interval_s,
        assignments_revision=state.changes.revision,
        node_ttl_s=state.settings.node_ttl_s,
        gateways=state.demand.tunnel_urls(),
    )


@router.post("/rotate")
async def rotate(
    node: CallingNode, session: Session, state: State, request: Request, protocol: ProtocolHeader
) -> JoinResponse:
    """Trade this node's credential for a new one: the old one stops working at once.

    Answers with the node's identity, as join does. Store the new credential before using it:
    the old one cannot rotate again.
    """
    _check_protocol(protocol)
    response = await service.rotate(session, node, state.settings.heartbeat_interval_s)
    node_credentials(request).forget(node.id)  # after the commit: no read can refill it
    await state.changes.bump()  # gateways learn the new credential, and drop the old one
    return response


@router.get("/assignments")
async def assignments(
    node: CallingNode,
    session: Session,
    state: State,
    request: Request,
    protocol: ProtocolHeader,
    after: After = 0,
    wait: Wait = 0,
) -> Assignments:
    """The replicas this node should run, answered when newer than `after` (a long poll).

    Changes that leave this node's replicas as they were in the answer at `after` do not end
    the poll (see `service.AssignmentWaits`).
    """
    _check_protocol(protocol)
    node_id = node.id
    await session.close()  # hold no database connection while the poll waits
    waits = service.assignment_waits(request)
    # Held for a random 50-100% of the wait (by default), as Kubernetes randomizes watch
    # timeouts: polls begun together (a fleet joining, a server restart) would otherwise all end
    # together, a wave of thousands of answers and new polls every `wait` seconds that
    # heartbeats queue behind. Spread, the waves flatten within a few rounds.
    jitter = state.settings.long_poll_jitter
    within_s = min(wait, state.settings.long_poll_max_s) * random.uniform(1.0 - jitter, 1.0)
    revision, unchanged = await waits.wait(node_id, after, within_s)
    if unchanged is not None:  # nothing of this node's changed: its last answer, no query
        again = unchanged.model_copy(update={"revision": revision})
        waits.told(node_id, again)
        return again
    current = await session.get(Node, node_id)
    answer = Assignments(
        revision=revision,
        assignments=await service.assignments_of(session, node_id),
        stop_grace_s=scheduling.stop_grace_s(current) if current else DEFAULT_STOP_GRACE_S,
    )
    waits.told(node_id, answer)
    return answer


@router.put("/replicas/{replica_id}/state")
async def report_replica(
    replica_id: PathName,
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


@router.post("/verification")
async def report_verification(
    body: VerificationReport,
    node: CallingNode,
    session: Session,
    state: State,
    protocol: ProtocolHeader,
) -> Verification:
    """Report the benchmark this node ran at join (or why it could not); the control plane's
    verdict, its capacity class derived from the node's stored fingerprint and the benchmark.

    The revision moves only when the class changes: the figures alone concern no watcher.
    """
    _check_protocol(protocol)
    verdict, class_changed = await service.verify(session, node, body)
    if class_changed:
        await state.changes.bump()
    return verdict


@router.get("/miners")
async def miner_orders(
    node: CallingNode,
    session: Session,
    state: State,
    protocol: ProtocolHeader,
    after: After = 0,
    wait: Wait = 0,
) -> MinerOrders:
    """What each ASIC miner of this node's site should do (a long poll, for a site agent).

    Any change ends the poll: site agents are one per site, and the answer says whether a
    curtailment or the hour's plan set the orders.
    """
    _check_protocol(protocol)
    await session.close()  # hold no database connection while the poll waits
    revision = await state.changes.wait_newer(after, min(wait, state.settings.long_poll_max_s))
    site = await _site_of(session, node.id)
    reason, orders = await power.orders(session, site)
    nodes = await power.node_orders(session, site)
    return MinerOrders(revision=revision, site=site.name, reason=reason, orders=orders, nodes=nodes)


@router.post("/miners/results")
async def report_miners(
    body: MinerResults,
    node: CallingNode,
    session: Session,
    state: State,
    protocol: ProtocolHeader,
) -> None:
    """Report what became of each miner's and GPU node's power order; operators see it with the
    site's power. A node its BMC could not power off is back in use (`standby`)."""
    _check_protocol(protocol)
    site = await _site_of(session, node.id)
    await miner_reports.record(session, site.id, body)
    if body.nodes and await standby.power_results(session, site.id, body.nodes):
        await state.changes.bump()


async def _site_of(session: AsyncSession, node_id: str) -> Site:
    node = await session.get(Node, node_id)
    site = None if node is None else await session.get(Site, node.site_id)
    if site is None:
        raise NotFound("this node is gone")
    return site
