from datetime import datetime

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hashgrid.server.db.base import Base, UTCDateTime, utcnow


class UsageRecordRow(Base):
    __tablename__ = "usage_records"

    # The gateway's request id, always its own: storing a record twice is impossible by
    # construction, and a client repeating its own id is billed for each request.
    request_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    # The `x-request-id` the client sent, if any: how a customer finds its records.
    client_request_id: Mapped[str | None] = mapped_column(String(200), index=True, default=None)
    key_id: Mapped[str] = mapped_column(String(32), index=True)
    customer_id: Mapped[str] = mapped_column(String(32), index=True)
    model: Mapped[str] = mapped_column(String(200))
    endpoint: Mapped[str] = mapped_column(String(64))
    replica_id: Mapped[str | None] = mapped_column(String(32))
    node_id: Mapped[str | None] = mapped_column(String(32))
    site: Mapped[str | None] = mapped_column(String(100))
    status_code: Mapped[int] = mapped_column(Integer)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    # At the catalog's prices when the record was stored (prices may change later).
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    duration_ms: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
