from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from hashgrid.contracts.api.common import Limits, Name, Out, Usd


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
    # This calendar month's (UTC) stored usage at its prices, in whole micro-dollars (rounded
    # up, as budgets count it).
    month_spend_usd: Usd = Decimal("0.00")


class KeyCreated(KeyOut):
    key: str  # the secret: shown in this response only
