from typing import Annotated

from fastapi import APIRouter, Query

from hashgrid.server import pages
from hashgrid.server.policy import Caller
from hashgrid.server.state import Session
from hashgrid.server.usage import service
from hashgrid.server.usage.schemas import (
    RejectedUsageOut,
    UsageFilter,
    UsageOut,
)

router = APIRouter(prefix="/api/v1/usage", tags=["usage"])

# Callers have read up to 10,000 records in one call since before lists had pages.
UsagePage = Annotated[pages.Paging, pages.paging(100, 10_000)]


@router.get("")
async def list_usage(
    session: Session, caller: Caller, page: UsagePage, only: Annotated[UsageFilter, Query()]
) -> list[UsageOut]:
    """Usage records, one per gateway request, newest first: a customer's its own requests, an
    operator's those its nodes served."""
    found = await service.recent(
        session, page.cursor, page.limit, caller.scope, caller.organization_kind, only
    )
    page.link(found.next_cursor)
    return [UsageOut.model_validate(r) for r in found.items]


@router.get("/rejected")
async def list_rejected_usage(
    session: Session, caller: Caller, page: UsagePage
) -> list[RejectedUsageOut]:
    """The newest records gateways sent that were not valid usage records, set aside unbilled
    (with the reason) so that the rest of their batches was stored."""
    found = await service.rejected(session, page.cursor, page.limit)
    page.link(found.next_cursor)
    return [RejectedUsageOut.model_validate(r) for r in found.items]
