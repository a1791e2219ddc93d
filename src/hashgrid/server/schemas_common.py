"""Pieces every domain's API schemas share."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"),
]


class Out(BaseModel):
    """A response shape read from table rows."""

    model_config = ConfigDict(from_attributes=True)


class Limits(BaseModel):
    """Limits of a key or a customer; null (or absent): no limit of that kind.

    A request is refused with 429 while the key's or its customer's requests or tokens in the
    last minute reach `rpm` or `tpm`, or while this calendar month's (UTC) spend reaches
    `monthly_budget_usd` (0 refuses every request).
    """

    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(None, ge=1, le=1_000_000_000, description="Requests per minute")
    tpm: int | None = Field(
        None, ge=1, le=2_000_000_000, description="Tokens (prompt + completion) per minute"
    )
    monthly_budget_usd: float | None = Field(
        None, ge=0, le=1e12, allow_inf_nan=False, description="USD per calendar month (UTC)"
    )
