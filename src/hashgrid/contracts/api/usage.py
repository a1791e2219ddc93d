from datetime import datetime

from pydantic import ConfigDict

from hashgrid.contracts.api.common import Out
from hashgrid.contracts.gateway import UsageRecord


class UsageOut(UsageRecord):
    """A stored usage record, as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    cost_usd: float = 0.0  # at the catalog's prices when it was stored


class RejectedUsageOut(Out):
    """A record a gateway sent that was not valid, set aside instead of stored."""

    request_id: str | None  # the record's own, when it had a usable one
    gateway: str  # the id of the gateway token that sent it
    reason: str  # each field that was wrong, and why
    record: str  # the record's JSON as received (ASCII escapes; cut after 4,000 characters)
    received_at: datetime
