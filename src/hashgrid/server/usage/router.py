from typing import Annotated

from fastapi import APIRouter, Query

from hashgrid.contracts.api.usage import RejectedUsageOut, UsageOut
from hashgrid.server.policy import Caller
from hashgrid.server.state import Session
from hashgrid.server.usage import service

router = APIRouter(prefix="/api/v1/usage", tags=["usage"])


@router.get("")
async def list_usage(
    session: Session, caller: Caller, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> list[UsageOut]:
    """The newest usage records, one per gateway request."""
    rows = await service.recent(session, limit, caller.scope, caller.organization_kind)
    return [UsageOut.model_validate(r) for r in rows]


@router.get("/rejected")
async def list_rejected_usage(
    session: Session, caller: Caller, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> list[RejectedUsageOut]:
    """The newest records gateways sent that were not valid usage records, set aside unbilled
    (with the reason) so that the rest of their batches was stored."""
    return [RejectedUsageOut.model_validate(r) for r in await service.rejected(session, limit)]
