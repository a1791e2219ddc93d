from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hashgrid.billing.ledger import DEFAULT_SHARE_BPS
from hashgrid.server.db.base import Base, LimitColumns, UTCDateTime, new_id, utcnow


class Organization(LimitColumns, Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # An operator's share of what its nodes earn, in basis points (server/billing/statements.py).
    operator_share_bps: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_SHARE_BPS, server_default=str(DEFAULT_SHARE_BPS)
    )
