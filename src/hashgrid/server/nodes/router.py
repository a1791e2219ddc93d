from typing import Annotated

from fastapi import APIRouter, Query, Request

from hashgrid.contracts.api.nodes import DrainRequest, NodeOut
from hashgrid.contracts.states import NodeStatus
from hashgrid.server import pages
from hashgrid.server.auth import node_credentials
from hashgrid.server.nodes import admission, scheduling, service
from hashgrid.server.params import PathName, filter_by
from hashgrid.server.policy import Caller
from hashgrid.server.reliability import service as reliability
from hashgrid.server.state import Session, State

router = APIRouter(prefix="/api/v1/nodes", tags=["nodes"])


@router.get("")
async def list_nodes(
    session: Session,
    caller: Caller,
    page: pages.WholePage,
    site: Annotated[str | None, filter_by("Only the nodes at this site")] = None,
    status: Annotated[NodeStatus | None, Query(description="Only the nodes in this status")] = None,
) -> list[NodeOut]:
    """The nodes, by name."""
    found = await service.list_visible(session, caller.scope, page.cursor, page.limit, site, status)
    page.link(found.next_cursor)
    scores = await reliability.scores(session, reliability.NODE, (n.id for n, _ in found.items))
    return [
        service.to_out(n, s, reliability.reliability_out(scores.get(n.id))) for n, s in found.items
    ]


@router.get("/{node}")
async def get_node(node: PathName, session: Session, caller: Caller) -> NodeOut:
    """A node by id or name, with its reliability score and the parts behind it."""
    row, site = await service.get(session, node, caller.scope)
    scores = await reliability.scores(session, reliability.NODE, [row.id])
    return service.to_out(row, site, reliability.reliability_out(scores.get(row.id)))


@router.post("/{node}/cordon")
async def cordon_node(node: PathName, session: Session, state: State, caller: Caller) -> NodeOut:
    """Place no new replicas on this node; those it runs keep serving."""
    row, site = await service.get(session, node, caller.scope)
    await scheduling.cordon(session, row)
    await state.changes.bump()
    return service.to_out(row, site)


@router.post("/{node}/uncordon")
async def uncordon_node(node: PathName, session: Session, state: State, caller: Caller) -> NodeOut:
    """Take new replicas again (this also ends a drain)."""
    row, site = await service.get(session, node, caller.scope)
    await scheduling.uncordon(session, row)
    await state.changes.bump()
    return service.to_out(row, site)


@router.post("/{node}/drain")
async def drain_node(
    node: PathName, body: DrainRequest, session: Session, state: State, caller: Caller
) -> NodeOut:
    """Route no new requests here, move its replicas elsewhere, and stop its engines once
    their in-flight requests finish, by the deadline at the latest."""
    row, site = await service.get(session, node, caller.scope)
    await scheduling.drain(session, row, body.deadline_s)
    await state.changes.bump()
    return service.to_out(row, site)


@router.post("/{node}/revoke")
async def revoke_node(
    node: PathName, session: Session, state: State, request: Request, caller: Caller
) -> NodeOut:
    """Revoke the node's credential: its next call gets 401, and it is marked lost with its
    replicas. The machine must join again, with a new join token, to come back (as a new node)."""
    row, site = await service.get(session, node, caller.scope)
    await service.revoke(session, row)
    node_credentials(request).forget(row.id)  # after the commit: no read can refill it
    await state.changes.bump()
    return service.to_out(row, site)


@router.post("/{node}/verify")
async def verify_node(node: PathName, session: Session, state: State, caller: Caller) -> NodeOut:
    """Verify the node again: it goes back to pending (its replicas move elsewhere) and its agent
    benchmarks the reference model at its next heartbeat; the verdict admits or refuses it."""
    row, site = await service.get(session, node, caller.scope)
    asked_by = "the platform admin" if caller.sees_all else "its operator"
    await admission.request_verification(session, row, asked_by, changes=state.changes)
    return service.to_out(row, site)
