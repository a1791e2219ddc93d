from datetime import datetime

from pydantic import BaseModel, ConfigDict

from hashgrid.contracts.api.common import Limits, Name, Out


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The customer organization; default (and the only one allowed): a customer's own.
    customer: Name | None = None
    name: Name = "default"
    limits: Limits = Limits()


class KeyOut(Out):
    id: str
    customer_id: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    limits: Limits
    month_spend_usd: float = 0.0  # this calendar month's stored usage (UTC), at its prices


class KeyCreated(KeyOut):
    key: str  # the secret: shown in this response only
