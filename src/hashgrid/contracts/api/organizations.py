from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from hashgrid.contracts.api.common import Limits, Name, Out


class OrgKind(StrEnum):
    OPERATOR = "operator"
    CUSTOMER = "customer"


class OrganizationCreate(BaseModel):
    name: Name
    kind: OrgKind


class OrganizationOut(Out):
    id: str
    name: str
    kind: OrgKind
    created_at: datetime
    limits: Limits  # a customer's, over all its keys together
    month_spend_usd: float = 0.0  # a customer's stored usage this calendar month (UTC)
