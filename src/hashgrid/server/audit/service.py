"""Reading the audit log, newest first, scoped to the caller's organization."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.server.audit.tables import AuditEntry


async def entries(
    session: AsyncSession,
    scope: str | None,
    limit: int,
    before: tuple[datetime, str] | None = None,
    organization_id: str | None = None,
) -> Sequence[AuditEntry]:
    """Entries of organization `scope` (None: of every organization), newest first, older than
    the entry `before` (its time and id) when given."""
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if scope is not None:
        query = query.where(AuditEntry.organization_id == scope)
    if organization_id is not None:
        query = query.where(AuditEntry.organization_id == organization_id)
    if before is not None:
        at, entry_id = before
        query = query.where(
            (AuditEntry.at < at) | ((AuditEntry.at == at) & (AuditEntry.id < entry_id))
        )
    return (await session.scalars(query)).all()
