from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, String, Text, false, true
from sqlalchemy.orm import Mapped, mapped_column

from hashgrid.billing.money import usd
from hashgrid.contracts.gateway import (
    CLIENT_REQUEST_ID_LEN,
    ENDPOINT_LEN,
    ID_LEN,
    MODEL_LEN,
    REQUEST_ID_LEN,
    SITE_LEN,
)
from hashgrid.server.db.base import Base, UTCDateTime, utcnow

# What a usage summary reads of a record besides its time (server/usage/summary.py).
SUMMED = ["model", "key_id", "site", "prompt_tokens", "completion_tokens", "cost_pico"]


class UsageRecordRow(Base):
    __tablename__ = "usage_records"
    # What the scoped reads seek by: a customer's records, and an operator's nodes' records,
    # in time order (server/usage/service.py `visible_to`). On PostgreSQL each also holds what
    # a usage summary sums and groups by, so a summary reads the index alone, not the table.
    __table_args__ = (
        Index(
            "ix_usage_records_customer_started",
            "customer_id",
            "started_at",
            postgresql_include=SUMMED,
        ),
        Index("ix_usage_records_node_started", "node_id", "started_at", postgresql_include=SUMMED),
    )

    # The gateway's request id, always its own: storing a record twice is impossible by
    # construction, and a client repeating its own id is billed for each request.
    request_id: Mapped[str] = mapped_column(String(REQUEST_ID_LEN), primary_key=True)
    # The `x-request-id` the client sent, if any: how a customer finds its records.
    client_request_id: Mapped[str | None] = mapped_column(
        String(CLIENT_REQUEST_ID_LEN), index=True, default=None
    )
    key_id: Mapped[str] = mapped_column(String(ID_LEN), index=True)
    customer_id: Mapped[str] = mapped_column(String(ID_LEN), index=True)
    model: Mapped[str] = mapped_column(String(MODEL_LEN))
    endpoint: Mapped[str] = mapped_column(String(ENDPOINT_LEN))
    replica_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    node_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    site: Mapped[str | None] = mapped_column(String(SITE_LEN))
    status_code: Mapped[int] = mapped_column(Integer)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    # What it was charged (server/usage/pricing.py): the price book's entry in force when it
    # started, for its deployment's tier, net of the customer's discount; pico-dollars per token.
    # A record keeps these whatever the book says later.
    tier: Mapped[str | None] = mapped_column(String(8), default=None)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    price_prompt: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    price_cached: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    price_completion: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    discount_bps: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cost_pico: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # exact
    # False: no entry of the book covered it when stored (cost 0 until one does).
    priced: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # The issued invoice that bills it; None: not invoiced yet (a draft, or a late record).
    invoice_id: Mapped[str | None] = mapped_column(String(ID_LEN), index=True, default=None)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    duration_ms: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The serving node's token counts were implausible; these are the gateway's clamped ones.
    usage_clamped: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    @property
    def cost_usd(self) -> Decimal:
        return usd(self.cost_pico)


class RejectedUsageRow(Base):
    """A record a gateway sent that is no valid usage record: kept aside, as sent, for an admin
    to read, so that it neither is billed nor stops the records behind it."""

    __tablename__ = "usage_rejected"

    # sha256 of the record as received: a batch sent again sets each record aside once.
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str | None] = mapped_column(String(REQUEST_ID_LEN))  # when it has one
    gateway: Mapped[str] = mapped_column(String(ID_LEN))  # the sending gateway's token id
    reason: Mapped[str] = mapped_column(Text)
    record: Mapped[str] = mapped_column(Text)  # its JSON, ASCII only, cut to a bound
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
