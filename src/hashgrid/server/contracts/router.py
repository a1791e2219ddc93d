"""Compute contracts: the platform admin makes and cancels them; a customer reads its own."""

from typing import Annotated

from fastapi import APIRouter, Query, status

from hashgrid.contracts.api.compute_contracts import ContractCreate, ContractDetail, ContractOut
from hashgrid.contracts.states import ContractStatus
from hashgrid.server import pages
from hashgrid.server.contracts import service
from hashgrid.server.db.base import utcnow
from hashgrid.server.params import PathName, filter_by
from hashgrid.server.policy import Caller
from hashgrid.server.state import Session, State

router = APIRouter(prefix="/api/v1/contracts", tags=["contracts"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_contract(
    body: ContractCreate, session: Session, state: State, caller: Caller
) -> ContractOut:
    """Reserve replicas of a deployment for a customer, at a price per replica-hour, for a
    term. Placement keeps them from a little before the term starts."""
    contract = await service.create(session, body, utcnow())
    await state.changes.bump()
    return await service.out(session, contract)


@router.get("")
async def list_contracts(
    session: Session,
    caller: Caller,
    page: pages.WholePage,
    contract_status: Annotated[
        ContractStatus | None, Query(alias="status", description="Only contracts in this status")
    ] = None,
    customer: Annotated[str | None, filter_by("Only this customer's contracts")] = None,
) -> list[ContractOut]:
    """The contracts the caller sees (a customer its own), oldest first."""
    found = await service.list_visible(
        session, caller.scope, page.cursor, page.limit, contract_status, customer
    )
    page.link(found.next_cursor)
    return [service.as_out(c, name) for c, name in found.items]


@router.get("/{contract_id}")
async def show_contract(contract_id: PathName, session: Session, caller: Caller) -> ContractDetail:
    """A contract with its replicas ready now and this month's replica-hours, missed ones and
    what they come to so far."""
    contract = await service.get(session, contract_id, caller.scope)
    return await service.detail(session, contract, utcnow())


@router.post("/{contract_id}/cancel")
async def cancel_contract(
    contract_id: PathName, session: Session, state: State, caller: Caller
) -> ContractOut:
    """End a contract now: billed through this hour; its replicas are on demand again."""
    contract = await service.cancel(session, contract_id, utcnow(), caller.scope)
    await state.changes.bump()
    return await service.out(session, contract)
