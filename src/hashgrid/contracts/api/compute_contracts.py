"""Compute contracts over REST: the platform admin reserves replicas of a deployment for a
customer organization at a price per replica-hour for a term of whole hours; the customer reads
its own, with this month's hours served and missed. Money is USD as a decimal (a JSON string),
never a float (`hashgrid.billing.money`)."""

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hashgrid.contracts.api.catalog import ModelName
from hashgrid.contracts.api.common import AwareMoment, Name
from hashgrid.contracts.api.deployments import MAX_REGIONS
from hashgrid.contracts.api.sites import Region
from hashgrid.contracts.states import ContractStatus

MAX_REPLICAS = 1_000
MAX_PRICE_USD = Decimal(1_000)  # per replica-hour
# A contract's hour at most: with at most 744 hours in a month, a month of it stays within the
# 64-bit pico-dollar amounts of the ledger.
MAX_HOURLY_USD = Decimal(10_000)
MAX_TERM = timedelta(days=3 * 366)


class ContractCreate(BaseModel):
    """A reservation for `customer` of `replicas` replicas of the deployment `model` from
    `starts_at` to `ends_at` (whole hours, with a zone; not before the current hour)."""

    model_config = ConfigDict(extra="forbid")

    customer: Name = Field(description="The customer organization the replicas are reserved for")
    model: ModelName = Field(
        description="A deployment the customer may call (public, or private to it): what its "
        "clients put in `model`"
    )
    replicas: int = Field(ge=1, le=MAX_REPLICAS, description="Replicas reserved, firm")
    regions: list[Region] = Field(
        default_factory=list,
        max_length=MAX_REGIONS,
        description="Where the replicas run, within the deployment's regions; empty: the "
        "deployment's",
    )
    price_per_replica_hour: Decimal = Field(
        ge=0,
        le=MAX_PRICE_USD,
        decimal_places=6,
        description="USD per replica-hour, billed for every reserved hour, used or not",
    )
    starts_at: AwareMoment = Field(description="A whole hour")
    ends_at: AwareMoment = Field(description="A whole hour after starts_at (exclusive)")
    sla_credit_percent: int = Field(
        100,
        ge=0,
        le=100,
        description="Of the price of each replica-hour missed (fewer replicas ready than "
        "reserved at some moment of the hour), credited on the invoice",
    )

    @model_validator(mode="after")
    def _term(self) -> Self:
        for name in ("starts_at", "ends_at"):
            t: datetime = getattr(self, name)
            if t.minute or t.second or t.microsecond:
                raise ValueError(f"{name} must be a whole hour")
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if self.ends_at - self.starts_at > MAX_TERM:
            raise ValueError("a term is at most 3 years")
        if self.replicas * self.price_per_replica_hour > MAX_HOURLY_USD:
            raise ValueError(
                f"replicas x price_per_replica_hour is at most {MAX_HOURLY_USD} USD an hour"
            )
        return self


class ContractOut(BaseModel):
    id: str
    customer: str  # the customer organization's name
    model: str  # the deployment's name
    replicas: int
    regions: list[str]
    price_per_replica_hour: Decimal  # USD
    sla_credit_percent: int
    starts_at: datetime
    ends_at: datetime
    status: ContractStatus
    created_at: datetime
    cancelled_at: datetime | None = None


class ContractPeriod(BaseModel):
    """A contract's hours in one billing period (a UTC month), the hours over so far."""

    period: str  # YYYY-MM
    replica_hours: int  # reserved, billed whether used or not
    replica_hours_missed: int  # credited per the SLA
    amount_usd: Decimal  # the reserved replica-hours' price
    credit_usd: Decimal  # the SLA credit: 0 or negative


class ContractDetail(ContractOut):
    replicas_ready: int  # of its reserved replicas, ready now
    this_period: ContractPeriod
