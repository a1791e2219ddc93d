from typing import Annotated

from fastapi import APIRouter, Query

from hashgrid.contracts.api.usage import (
    RejectedUsageOut,
    UsageFilter,
    UsageOut,
    UsageSummaryQuery,
    UsageSummaryRow,
)
from hashgrid.server import pages
from hashgrid.server.policy import Caller
from hashgrid.server.state import Session, State
from hashgrid.server.usage import service, summary

router = APIRouter(prefix="/api/v1/usage", tags=["usage"])

# Callers have read up to 10,000 records in one call since before lists had pages.
UsagePage = Annotated[pages.Paging, pages.paging(100, 10_000)]


@router.get("")
async def list_usage(
    session: Session, caller: Caller, page: UsagePage, only: Annotated[UsageFilter, Query()]
) -> list[UsageOut]:
    """Usage records, one per gateway request, newest first: a customer's its own requests, an
    operator's those its nodes served."""
    kind = caller.organization_kind
    service.check_asked(kind, only)
    found = await service.recent(session, page.cursor, page.limit, caller.scope, kind, only)
    page.link(found.next_cursor)
    return [service.shown(r, kind) for r in found.items]


@router.get("/summary", response_model_exclude_unset=True)
async def summarize_usage(
    session: Session,
    state: State,
    caller: Caller,
    asked: Annotated[UsageSummaryQuery, Query()],
) -> list[UsageSummaryRow]:
    """The usage the caller sees (as `GET /usage` lists it), summed per day, model, key or
    region (`group_by`, repeatable), over a window of at most a year (this month by default)."""
    service.check_asked(caller.organization_kind, asked, asked.group_by)
    kind = caller.organization_kind
    return await summary.summarize(session, caller.scope, kind, asked, state.summaries)


@router.get("/rejected")
async def list_rejected_usage(
    session: Session, caller: Caller, page: UsagePage
) -> list[RejectedUsageOut]:
    """The newest records gateways sent that were not valid usage records, set aside unbilled
    (with the reason) so that the rest of their batches was stored."""
    found = await service.rejected(session, page.cursor, page.limit)
    page.link(found.next_cursor)
    return [RejectedUsageOut.model_validate(r) for r in found.items]
