from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from hashgrid.contracts.states import CurtailmentStatus
from hashgrid.server.db.base import Base, UTCDateTime, new_id, utcnow


class SitePower(Base):
    """A site's power model (`schemas.PowerModel` as JSON): ASIC groups, GPU node economics,
    price and hashprice sources. Its budget is the site's `power_mw`, its state the site's
    `power_state`."""

    __tablename__ = "site_power"

    site_id: Mapped[str] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Curtailment(Base):
    """One curtailment event: what was asked, what was shed in which order, what it cost.

    A scheduled one has no `started_at` yet: until it begins, its shed figures and `starts_at`
    are decided afresh from the site's load. The cost figures are filled when it ends, from the
    duration and the price and mining value of the interval it began in."""

    __tablename__ = "curtailments"
    # At most one open (in force or scheduled) per site, whatever requests race.
    __table_args__ = (
        Index(
            "uq_curtailments_open_site",
            "site_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(16))  # grid | operator
    reason: Mapped[str] = mapped_column(Text, default="")
    target_mw: Mapped[float] = mapped_column(Float)
    by: Mapped[datetime] = mapped_column(UTCDateTime)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when shedding is due to begin
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)  # it began
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    load_mw: Mapped[float] = mapped_column(Float)  # the site's load when it began
    asic_shed_mw: Mapped[float] = mapped_column(Float)
    flex_shed_mw: Mapped[float] = mapped_column(Float)
    firm_shed_mw: Mapped[float] = mapped_column(Float)
    # MW each ASIC group keeps hashing, in the order of the power model's groups.
    asic_kept_mw: Mapped[list[float]] = mapped_column(JSON)
    power_state: Mapped[str] = mapped_column(String(16))  # the site's state it led to
    price_usd_per_mwh: Mapped[float | None] = mapped_column(Float, default=None)
    mining_usd_per_mwh: Mapped[float | None] = mapped_column(Float, default=None)
    energy_saved_usd: Mapped[float | None] = mapped_column(Float, default=None)
    mining_foregone_usd: Mapped[float | None] = mapped_column(Float, default=None)

    @property
    def status(self) -> CurtailmentStatus:
        if self.ended_at is not None:
            return (
                CurtailmentStatus.CANCELLED if self.started_at is None else CurtailmentStatus.ENDED
            )
        return (
            CurtailmentStatus.SCHEDULED if self.started_at is None else CurtailmentStatus.IN_FORCE
        )


class PlannedInterval(Base):
    """The online plan of one site for one interval, as the power reconciler computed it, and
    whether it was applied (a curtailment in force wins over it)."""

    __tablename__ = "power_plans"
    __table_args__ = (UniqueConstraint("site_id", "start"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    hours: Mapped[float] = mapped_column(Float)
    mining_mw: Mapped[float] = mapped_column(Float)
    asic_mw: Mapped[list[float]] = mapped_column(JSON)  # per ASIC group, as in the power model
    inference_mw: Mapped[float] = mapped_column(Float)
    offered_mw: Mapped[float] = mapped_column(Float)
    price_usd_per_mwh: Mapped[float] = mapped_column(Float)
    mining_usd: Mapped[float] = mapped_column(Float)
    inference_usd: Mapped[float] = mapped_column(Float)
    ancillary_usd: Mapped[float] = mapped_column(Float)
    energy_usd: Mapped[float] = mapped_column(Float)
    flex_paused: Mapped[bool] = mapped_column(default=False)
    applied: Mapped[bool] = mapped_column(default=False)
    # The work it was planned on, the hour's latest: busy nodes, their demand in later plans.
    firm_nodes: Mapped[int | None] = mapped_column(default=None)
    flex_nodes: Mapped[int | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MinerReport(Base):
    """What a site agent last said its miners did with their orders, one row per site, kept so
    that operators see it across server restarts."""

    __tablename__ = "miner_reports"

    site_id: Mapped[str] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revision: Mapped[int] = mapped_column(BigInteger)  # the orders' revision: a clock reading
    by_action: Mapped[dict[str, int]] = mapped_column(JSON)  # miners now doing each action
    failed: Mapped[int]
    first_failure: Mapped[str | None] = mapped_column(Text, default=None)
    # GPU nodes' BMCs, each one's last result: node name -> "on", "off" or "failed: why".
    nodes: Mapped[dict[str, str] | None] = mapped_column(JSON, default=None)
