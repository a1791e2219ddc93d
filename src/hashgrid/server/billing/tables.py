from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from hashgrid.contracts.api.billing import NUMBER_LEN
from hashgrid.contracts.gateway import MODEL_LEN
from hashgrid.server.db.base import Base, UTCDateTime, new_id

PERIOD_LEN = 7  # YYYY-MM


class Invoice(Base):
    """A customer's issued invoice of one period: stored when issued, never changed after but
    for its status (`contracts/states.py: InvoiceStatus`). Drafts are not stored."""

    __tablename__ = "invoices"
    # One invoice of a customer's period that is not void: a second issue of it is refused even
    # when two servers issue at once.
    __table_args__ = (
        Index(
            "uq_invoices_customer_period_live",
            "customer_id",
            "period",
            unique=True,
            sqlite_where=text("status != 'void'"),
            postgresql_where=text("status != 'void'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(NUMBER_LEN), unique=True)  # HG-2026-000001
    customer_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    period: Mapped[str] = mapped_column(String(PERIOD_LEN), index=True)
    status: Mapped[str] = mapped_column(String(8))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    subtotal_cents: Mapped[int] = mapped_column(BigInteger)
    credits_cents: Mapped[int] = mapped_column(BigInteger)
    total_cents: Mapped[int] = mapped_column(BigInteger)


class InvoiceLineRow(Base):
    """One line of an issued invoice (`hashgrid.billing.lines.Line`), with its sources: each
    node's exact part, and whose node it was when the invoice was issued (operator, site, the
    operator's share), so that the statements of an issued period never change."""

    __tablename__ = "invoice_lines"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    invoice_id: Mapped[str] = mapped_column(
        ForeignKey("invoices.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)  # its place on the invoice
    kind: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(MODEL_LEN))
    tier: Mapped[str | None] = mapped_column(String(8))
    ref: Mapped[str | None] = mapped_column(String(100))
    quantity: Mapped[int] = mapped_column(BigInteger)
    unit: Mapped[str] = mapped_column(String(32))
    unit_price_pico: Mapped[int] = mapped_column(BigInteger)
    amount_pico: Mapped[int] = mapped_column(BigInteger)  # exact
    cents: Mapped[int] = mapped_column(BigInteger)  # rounded once, half to even
    # [{"node": id | null, "pico": exact part, "operator": id | null, "site": name | null,
    #   "share_bps": int | null}]
    sources: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class InvoiceNumber(Base):
    """The last invoice number given in a year. Issuing takes its row's lock first, so invoices
    are numbered in the order they are issued, without gaps, on any number of servers."""

    __tablename__ = "invoice_numbers"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer)
