"""Reading the audit log, newest first, scoped to the caller's organization."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.server import pages
from hashgrid.server.audit.tables import AuditEntry

ORDER = pages.Order(pages.By(AuditEntry.at, descending=True), pages.By(AuditEntry.id))


async def entries(
    session: AsyncSession, scope: str | None, cursor: str | None, limit: int
) -> pages.Items[AuditEntry]:
    """A page of the entries of organization `scope` (None: of every organization), newest
    first."""
    query = select(AuditEntry)
    if scope is not None:
        query = query.where(AuditEntry.organization_id == scope)
    return await pages.scalars(session, query, ORDER, cursor, limit)
