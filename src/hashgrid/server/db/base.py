"""The declarative base every domain's `tables.py` builds on."""

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Float, Integer, MetaData
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

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
    """A key's or an organization's limits (mixed into its table); None: no limit."""

    rpm_limit: Mapped[int | None] = mapped_column(Integer, default=None)
    tpm_limit: Mapped[int | None] = mapped_column(Integer, default=None)
    monthly_budget_usd: Mapped[float | None] = mapped_column(Float, default=None)

    @property
    def limits(self) -> dict[str, float | None]:
        """The limits in the API's and the gateway feed's shape (`rpm`, `tpm`, budget)."""
        return {
            "rpm": self.rpm_limit,
            "tpm": self.tpm_limit,
            "monthly_budget_usd": self.monthly_budget_usd,
        }

    def set_limits(self, rpm: int | None, tpm: int | None, budget_usd: float | None) -> None:
        self.rpm_limit = rpm
        self.tpm_limit = tpm
        self.monthly_budget_usd = budget_usd
