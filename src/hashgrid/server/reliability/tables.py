from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from hashgrid.contracts.gateway import ID_LEN, MODEL_LEN, REQUEST_ID_LEN
from hashgrid.server.db.base import Base, UTCDateTime, utcnow


class SpotCheckRow(Base):
    """One spot-check a gateway reported (`contracts/spotchecks.py`)."""

    __tablename__ = "spot_checks"
    # A node's latest checks, newest first: what quarantine and scores read.
    __table_args__ = (Index("ix_spot_checks_node_checked", "node_id", "checked_at"),)

    check_id: Mapped[str] = mapped_column(String(REQUEST_ID_LEN), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(REQUEST_ID_LEN))
    model: Mapped[str] = mapped_column(String(MODEL_LEN))
    node_id: Mapped[str] = mapped_column(String(ID_LEN))
    replica_id: Mapped[str] = mapped_column(String(ID_LEN))
    reference_node_id: Mapped[str] = mapped_column(String(ID_LEN))
    reference_replica_id: Mapped[str] = mapped_column(String(ID_LEN))
    mode: Mapped[str] = mapped_column(String(16))
    agreement: Mapped[float] = mapped_column(Float)
    passed: Mapped[bool] = mapped_column(Boolean)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    gateway_id: Mapped[str | None] = mapped_column(String(ID_LEN), default=None)


class ReliabilityScore(Base):
    """A node's or a site's reliability as the scores reconciler last computed it."""

    __tablename__ = "reliability_scores"

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # "node" or "site"
    subject_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    score: Mapped[float] = mapped_column(Float)
    # `capacity.score.Reliability.parts()` and the counts they came from.
    parts: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Seconds ready and seconds watched, each decayed over the window (`capacity.score.decayed`).
    up_s: Mapped[float] = mapped_column(Float, default=0.0)
    seen_s: Mapped[float] = mapped_column(Float, default=0.0)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
