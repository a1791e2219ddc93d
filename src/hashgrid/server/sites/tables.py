from datetime import datetime

from sqlalchemy import Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from hashgrid.contracts.states import SitePowerState
from hashgrid.server.db.base import Base, UTCDateTime, new_id, utcnow


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    operator_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    region: Mapped[str] = mapped_column(String(64))
    country: Mapped[str] = mapped_column(String(2))
    power_mw: Mapped[float] = mapped_column(Float)
    # Set by curtailments (server/power/); placement and the gateway view read it.
    power_state: Mapped[str] = mapped_column(
        String(16), default=SitePowerState.ACTIVE, server_default=SitePowerState.ACTIVE.value
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JoinToken(Base):
    __tablename__ = "join_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    used_by_node_id: Mapped[str | None] = mapped_column(String(32), default=None)
