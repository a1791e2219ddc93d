from fastapi import APIRouter, status

from hashgrid.contracts.api.access import TokenCreate, TokenCreated
from hashgrid.server.access import service
from hashgrid.server.policy import Caller
from hashgrid.server.state import Session

router = APIRouter(prefix="/api/v1/tokens", tags=["access"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_token(body: TokenCreate, session: Session, caller: Caller) -> TokenCreated:
    """Create an admin or gateway token. The secret is in this response only."""
    row, secret = await service.create(session, body.name, body.role)
    return TokenCreated(
        id=row.id, name=row.name, role=body.role, token=secret, created_at=row.created_at
    )
