"""The audit log: the platform admin reads every entry, an organization's admins their own."""

from datetime import datetime

from fastapi import APIRouter, Request, Response

from hashgrid.contracts.api.audit import AuditEntryOut
from hashgrid.server import pages
from hashgrid.server.audit import service
from hashgrid.server.errors import Invalid
from hashgrid.server.policy import Caller
from hashgrid.server.state import Session

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("")
async def list_audit(
    caller: Caller,
    session: Session,
    request: Request,
    response: Response,
    limit: pages.Limit = 100,
    cursor: pages.Cursor = None,
) -> list[AuditEntryOut]:
    """Changes made through the API, newest first."""
    before = None
    if cursor:
        at, entry_id = pages.decode(cursor, 2)
        before = (_moment(at), str(entry_id))
    rows = await service.entries(session, caller.scope, limit + 1, before)
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more else None
    pages.link_next(request, response, pages.encode(last.at.isoformat(), last.id) if last else None)
    return [AuditEntryOut.model_validate(r) for r in rows]


def _moment(text: object) -> datetime:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        raise Invalid("cursor: not a cursor this API made") from None
