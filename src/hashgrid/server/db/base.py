"""The declarative base every domain's `tables.py` builds on."""

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, MetaData
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from hashgrid.billing.money import micros_of, micros_usd
from hashgrid.contracts.api.common import Limits

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class LimitColumns:
    """A key's or an organization's limits (mixed into its table); None: no limit. The budget
    is kept in integer micro-dollars, as the gateways count it."""

    rpm_limit: Mapped[int | None] = mapped_column(Integer, default=None)
    tpm_limit: Mapped[int | None] = mapped_column(Integer, default=None)
    monthly_budget_micros: Mapped[int | None] = mapped_column(BigInteger, default=None)

    @property
    def limits(self) -> Limits:
        """The limits in the API's shape (the budget in USD)."""
        budget = self.monthly_budget_micros
        return Limits(
            rpm=self.rpm_limit,
            tpm=self.tpm_limit,
            monthly_budget_usd=None if budget is None else micros_usd(budget),
        )

    def set_limits(self, limits: Limits) -> None:
        budget = limits.monthly_budget_usd
        self.rpm_limit = limits.rpm
        self.tpm_limit = limits.tpm
        self.monthly_budget_micros = None if budget is None else micros_of(budget)
