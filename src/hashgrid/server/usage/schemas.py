from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from hashgrid.contracts.bounds import text
from hashgrid.contracts.gateway import ID_LEN, MODEL_LEN, UsageRecord
from hashgrid.server.schemas_common import AwareMoment, Out


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


class UsageFilter(BaseModel):
    """Which of the records the caller sees to read (query parameters); absent: any."""

    model: Annotated[str, text(MODEL_LEN)] | None = Field(None, description="Of this model only")
    key_id: Annotated[str, text(ID_LEN)] | None = Field(None, description="Of this key only")
    since: AwareMoment | None = Field(None, description="Started at this time or later")
    until: AwareMoment | None = Field(None, description="Started before this time")
