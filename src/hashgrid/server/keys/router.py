"""Customer API keys: stored hashed, shown once, with optional limits and a budget."""

from typing import Annotated

from fastapi import APIRouter, Query, status

from hashgrid.billing.money import micros_usd
from hashgrid.contracts.api.common import Limits
from hashgrid.contracts.api.keys import KeyCreate, KeyCreated, KeyOut
from hashgrid.server import pages
from hashgrid.server.keys import service
from hashgrid.server.keys.tables import ApiKey
from hashgrid.server.params import PathName, filter_by
from hashgrid.server.policy import Caller
from hashgrid.server.state import ServerState, Session, State

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])


def key_out(key: ApiKey, state: ServerState) -> KeyOut:
    out = KeyOut.model_validate(key)
    out.month_spend_usd = micros_usd(state.spend.of_key(key.id))
    return out


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_key(body: KeyCreate, session: Session, state: State, caller: Caller) -> KeyCreated:
    """Create a customer API key, with limits if given. The secret is in this response only."""
    key, secret = await service.create(session, body.customer, body.name, body.limits, caller.scope)
    await state.changes.bump()
    return KeyCreated(**key_out(key, state).model_dump(), key=secret)


@router.get("")
async def list_keys(
    session: Session,
    state: State,
    caller: Caller,
    page: pages.WholePage,
    revoked: Annotated[
        bool | None, Query(description="Only revoked keys, or only live ones")
    ] = None,
    customer: Annotated[str | None, filter_by("Only this customer's keys")] = None,
) -> list[KeyOut]:
    """The keys (never their secrets), oldest first, with their limits and this month's spend."""
    found = await service.list_visible(
        session, caller.scope, page.cursor, page.limit, revoked, customer
    )
    page.link(found.next_cursor)
    return [key_out(k, state) for k in found.items]


@router.put("/{key_id}/limits")
async def set_key_limits(
    key_id: PathName, body: Limits, session: Session, state: State, caller: Caller
) -> KeyOut:
    """Replace the key's limits; gateways apply them within a second or so."""
    key = await service.set_limits(session, key_id, body, caller.scope)
    await state.changes.bump()
    return key_out(key, state)


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_key(key_id: PathName, session: Session, state: State, caller: Caller) -> None:
    """Revoke a key: gateways refuse it (401) as soon as their view updates, within seconds."""
    await service.revoke(session, key_id, caller.scope)
    await state.changes.bump()
