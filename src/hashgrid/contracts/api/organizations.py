from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel

from hashgrid.contracts.api.common import Limits, Name, Out, Usd


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
    # A customer's stored usage this calendar month (UTC), in whole micro-dollars (rounded up,
    # as budgets count it).
    month_spend_usd: Usd = Decimal("0.00")
