"""The audit log: the platform admin reads every entry, an organization's admins their own."""

from fastapi import APIRouter

from hashgrid.contracts.api.audit import AuditEntryOut
from hashgrid.server import pages
from hashgrid.server.audit import service
from hashgrid.server.policy import Caller
from hashgrid.server.state import Session

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("")
async def list_audit(caller: Caller, session: Session, page: pages.Page) -> list[AuditEntryOut]:
    """Changes made through the API, newest first."""
    found = await service.entries(session, caller.scope, page.cursor, page.limit)
    page.link(found.next_cursor)
    return [AuditEntryOut.model_validate(e) for e in found.items]
