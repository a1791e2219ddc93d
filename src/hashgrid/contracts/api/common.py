"""Pieces every domain's API shapes share.

Every input the API stores or looks up is bounded (`contracts/bounds.py`): strings as long as
their column and without NUL, integers within their column's type, floats finite, so a bad
value is a 422 before it reaches the database on either backend (and an error in the client,
which builds the same shapes, before it is sent).
"""

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
)

Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"),
]


def _within_years(moment: datetime) -> datetime:
    if not 2000 <= moment.year <= 2100:
        raise ValueError("must be between the years 2000 and 2100")
    return moment


# A time the server computes from (a plan's start, a curtailment's deadline): near enough to now
# that weeks of history before it and days of plan after it stay within datetime's range.
Moment = Annotated[datetime, AfterValidator(_within_years)]
# A time the caller gives a window of stored rows by: with its zone (UTC is not assumed).
AwareMoment = Annotated[AwareDatetime, AfterValidator(_within_years)]


# A USD amount as the API writes it: a JSON string with every digit, never a float.
Usd = Annotated[Decimal, PlainSerializer(lambda d: f"{d:f}", return_type=str, when_used="json")]
# A budget: whole micro-dollars (at most 6 decimals), at most $1e9 (so its micro-dollars stay
# exact wherever they are counted, Lua's doubles in Redis included). Numbers are taken too.
BudgetUsd = Annotated[Usd, Field(ge=0, le=10**9, decimal_places=6, allow_inf_nan=False)]


class Out(BaseModel):
    """A response shape read from table rows."""

    model_config = ConfigDict(from_attributes=True)


class Limits(BaseModel):
    """Limits of a key or a customer; null (or absent): no limit of that kind.

    A request is refused with 429 while the key's or its customer's requests or tokens in the
    last minute reach `rpm` or `tpm`, or when its worst-case cost does not fit what is left of
    `monthly_budget_usd` this calendar month (UTC), after the spend and the requests in flight
    (0 refuses every request). The budget is a decimal string in USD (`"50.00"`; a number is
    accepted too), with at most 6 decimals.
    """

    model_config = ConfigDict(extra="forbid")

    # Within the 32-bit `Integer` columns that hold them.
    rpm: int | None = Field(None, ge=1, le=1_000_000_000, description="Requests per minute")
    tpm: int | None = Field(
        None, ge=1, le=2_000_000_000, description="Tokens (prompt + completion) per minute"
    )
    monthly_budget_usd: BudgetUsd | None = Field(None, description="USD per calendar month (UTC)")


class ReliabilityOut(BaseModel):
    """A node's or a site's reliability over the last day (`capacity/score.py`): the score, in
    [0, 1], is uptime x success x agreement x (1 + speed) / 2; the counts say why."""

    score: float
    uptime: float  # share of the window it was ready
    success: float  # requests answered without a 5xx (with a prior of good ones)
    speed: float  # requests whose first token came within its class's expectation
    agreement: float  # spot-checks of its answers passed
    requests: int = 0
    failed: int = 0
    slow: int = 0
    checks: int = 0
    mismatches: int = 0
    computed_at: datetime | None = None
