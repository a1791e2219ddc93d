from datetime import datetime

from pydantic import BaseModel

from hashgrid.server.organizations.tables import OrgKind
from hashgrid.server.schemas_common import Limits, Name, Out


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
