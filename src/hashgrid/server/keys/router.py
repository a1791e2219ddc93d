from fastapi import APIRouter, status

from hashgrid.server.auth import Admin
from hashgrid.server.keys import service
from hashgrid.server.keys.schemas import KeyCreate, KeyCreated, KeyOut
from hashgrid.server.state import Session, State

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_key(body: KeyCreate, session: Session, state: State, _: Admin) -> KeyCreated:
    """Create a customer API key. The secret is in this response only."""
    key, secret = await service.create(session, body.customer, body.name)
    await state.changes.bump()
    return KeyCreated(**KeyOut.model_validate(key).model_dump(), key=secret)


@router.get("")
async def list_keys(session: Session, _: Admin) -> list[KeyOut]:
    return [KeyOut.model_validate(k) for k in await service.list_all(session)]


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_key(key_id: str, session: Session, state: State, _: Admin) -> None:
    await service.revoke(session, key_id)
    await state.changes.bump()
