from typing import Annotated

from fastapi import APIRouter, Query, status

from hashgrid.billing.money import micros_usd
from hashgrid.contracts.api.common import Limits
from hashgrid.contracts.api.organizations import OrganizationCreate, OrganizationOut, OrgKind
from hashgrid.server import pages
from hashgrid.server.organizations import service
from hashgrid.server.organizations.tables import Organization
from hashgrid.server.params import PathName
from hashgrid.server.policy import Caller
from hashgrid.server.state import ServerState, Session, State

router = APIRouter(prefix="/api/v1/organizations", tags=["organizations"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_organization(
    body: OrganizationCreate, session: Session, state: State, caller: Caller
) -> OrganizationOut:
    """Create an operator (runs sites) or a customer (sends requests)."""
    return organization_out(await service.create(session, body.name, body.kind), state)


@router.get("")
async def list_organizations(
    session: Session,
    state: State,
    caller: Caller,
    page: pages.WholePage,
    kind: Annotated[OrgKind | None, Query(description="Only organizations of this kind")] = None,
) -> list[OrganizationOut]:
    """The organizations the caller sees (its own; the platform admin's: all), by name."""
    found = await service.list_visible(session, caller.scope, page.cursor, page.limit, kind)
    page.link(found.next_cursor)
    return [organization_out(o, state) for o in found.items]


@router.get("/{name}")
async def get_organization(
    name: PathName, session: Session, state: State, caller: Caller
) -> OrganizationOut:
    return organization_out(await service.get_visible(session, name, caller.scope), state)


@router.put("/{name}/limits")
async def set_organization_limits(
    name: PathName, body: Limits, session: Session, state: State, caller: Caller
) -> OrganizationOut:
    """Replace a customer's limits, which hold over all its keys together (each key's own
    limits hold too)."""
    org = await service.set_limits(session, name, body)
    await state.changes.bump()
    return organization_out(org, state)


def organization_out(org: Organization, state: ServerState) -> OrganizationOut:
    out = OrganizationOut.model_validate(org)
    out.month_spend_usd = micros_usd(state.spend.of_customer(org.id))
    return out
