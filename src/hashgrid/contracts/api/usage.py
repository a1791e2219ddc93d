from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, Field, PlainSerializer, model_validator

from hashgrid.contracts.api.common import AwareMoment, Out
from hashgrid.contracts.bounds import text
from hashgrid.contracts.gateway import ID_LEN, MODEL_LEN


class UsageOut(Out):
    """A stored usage record, as the API shows it to the caller: an operator is not shown whose
    request its node served (key, customer and the client's request id are null), a customer
    not which node served it (replica and node null); the platform admin sees every field."""

    request_id: str
    client_request_id: str | None
    key_id: str | None
    customer_id: str | None
    model: str
    endpoint: str
    replica_id: str | None
    node_id: str | None
    site: str | None
    status_code: int
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float | None
    duration_ms: float
    started_at: datetime
    usage_clamped: bool = False  # the serving node's counts were not trusted (see metering)
    cached_tokens: int = 0  # of the prompt tokens, those served from the engine's cache
    tier: str | None = None
    # Exact, at the prices it was charged (the price book's when it started, less discount).
    cost_usd: Annotated[Decimal, PlainSerializer(lambda d: f"{d:f}", return_type=str)]
    priced: bool = True  # False: no price covered it yet (cost 0 until one does)


class RejectedUsageOut(Out):
    """A record a gateway sent that was not valid, set aside instead of stored."""

    request_id: str | None  # the record's own, when it had a usable one
    gateway: str  # the id of the gateway token that sent it
    reason: str  # each field that was wrong, and why
    record: str  # the record's JSON as received (ASCII escapes; cut after 4,000 characters)
    received_at: datetime


class UsageFilter(BaseModel):
    """Which of the records the caller sees to read (query parameters); absent: any."""

    model: Annotated[str, text(MODEL_LEN)] | None = Field(None, description="Of this model only")
    key_id: Annotated[str, text(ID_LEN)] | None = Field(None, description="Of this key only")
    since: AwareMoment | None = Field(None, description="Started at this time or later")
    until: AwareMoment | None = Field(None, description="Started before this time")


class Grouping(StrEnum):
    """What usage is summed by."""

    DAY = "day"  # the UTC day the request started
    MODEL = "model"
    KEY = "key"
    REGION = "region"  # of the site that served the request


# The longest window a summary sums over: a year, leap day included.
MAX_SUMMARY_DAYS = 366


class UsageSummaryQuery(UsageFilter):
    """A summary's window (by default this calendar month, UTC; at most `MAX_SUMMARY_DAYS`)
    and what it groups by (by day if not said; `group_by` may be given several times)."""

    group_by: list[Grouping] = Field([Grouping.DAY], max_length=len(Grouping))

    @model_validator(mode="after")
    def _window(self) -> Self:
        month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        self.since = self.since or month
        self.until = self.until or (month + timedelta(days=32)).replace(day=1)
        if self.until <= self.since:
            raise ValueError("until must be after since")
        if self.until - self.since > timedelta(days=MAX_SUMMARY_DAYS):
            raise ValueError(f"the window from since to until is {MAX_SUMMARY_DAYS} days at most")
        self.group_by = list(dict.fromkeys(self.group_by))
        return self


class UsageSummaryRow(BaseModel):
    """The records of one group: only the fields it is grouped by are present (`region` null:
    served by no known site)."""

    day: date | None = None
    model: str | None = None
    key_id: str | None = None
    region: str | None = None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    # The records' exact costs summed; a decimal in a JSON string ("12.50"), since money is
    # never a float here.
    cost_usd: Annotated[Decimal, PlainSerializer(lambda d: f"{d:f}", return_type=str)]
