from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hashgrid.contracts.states import ContractStatus
from hashgrid.server.db.base import Base, UTCDateTime, new_id, utcnow


class ComputeContract(Base):
    """A customer's reservation of replicas of one deployment for a term of whole hours."""

    __tablename__ = "compute_contracts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    customer_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    # No FK: a deployment with a live contract cannot be deleted, and an ended contract
    # outlives its deployment on the invoices that bill it.
    deployment_id: Mapped[str] = mapped_column(String(32), index=True)
    model: Mapped[str] = mapped_column(String(200))  # the deployment's name: what invoices say
    replicas: Mapped[int] = mapped_column(Integer)
    regions: Mapped[list[str]] = mapped_column(JSON, default=list)  # empty: the deployment's
    price_pico: Mapped[int] = mapped_column(BigInteger)  # per replica-hour, whole micro-dollars
    sla_credit_percent: Mapped[int] = mapped_column(Integer, default=100)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)  # whole hours
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=ContractStatus.PENDING, index=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ContractHour(Base):
    """One watched hour of an active contract (`billing.contracts.Hour`), written by the
    hour-accounting pass as it samples the contract's replicas."""

    __tablename__ = "contract_hours"

    contract_id: Mapped[str] = mapped_column(ForeignKey("compute_contracts.id"), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)  # its start
    reserved: Mapped[int] = mapped_column(Integer)
    min_ready: Mapped[int] = mapped_column(Integer)  # the fewest ready at once
    samples: Mapped[int] = mapped_column(Integer)
    # Node id -> ready replica-samples: over `samples`, the replica-hours each node hosted.
    hosted: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    # Node id ("": placed nowhere) -> replicas missing at the sample that set `min_ready`.
    missed: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
