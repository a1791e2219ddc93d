from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hashgrid.contracts.gateway import ID_LEN, MODEL_LEN
from hashgrid.server.db.base import Base, UTCDateTime, new_id, utcnow


class PriceRow(Base):
    """One entry of the price book: a model's unit prices in a tier from a moment on."""

    __tablename__ = "prices"
    __table_args__ = (UniqueConstraint("model", "tier", "effective_from"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    model: Mapped[str] = mapped_column(String(MODEL_LEN))
    tier: Mapped[str] = mapped_column(String(8))
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime)
    # Pico-dollars per token (= micro-dollars per million tokens).
    prompt: Mapped[int] = mapped_column(BigInteger)
    cached: Mapped[int] = mapped_column(BigInteger)
    completion: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DiscountRow(Base):
    """A customer's discount (basis points) for a model or every model, from a moment on."""

    __tablename__ = "discounts"
    __table_args__ = (UniqueConstraint("customer_id", "model", "effective_from"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    customer_id: Mapped[str] = mapped_column(
        String(ID_LEN), ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    model: Mapped[str | None] = mapped_column(String(MODEL_LEN), default=None)
    bps: Mapped[int] = mapped_column(Integer)
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
