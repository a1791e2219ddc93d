from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from hashgrid.server.db.base import Base, UTCDateTime, new_id, utcnow


class AuditEntry(Base):
    """One change made through the REST API: written in the same transaction as the change,
    never updated or deleted by the server."""

    __tablename__ = "audit_log"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # The caller's organization (the platform's for an admin token); whose admins read it.
    organization_id: Mapped[str | None] = mapped_column(String(32), index=True)
    actor: Mapped[str] = mapped_column(String(100))  # "user:<id>" or "token:<id>"
    action: Mapped[str] = mapped_column(String(100))  # the operation, e.g. "create_key"
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(300))
    # The rows the change wrote, as {"table": [ids]}.
    touched: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
