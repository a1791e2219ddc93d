from datetime import datetime

from pydantic import BaseModel

from hashgrid.server.organizations.tables import OrgKind
from hashgrid.server.schemas_common import Name, Out


class OrganizationCreate(BaseModel):
    name: Name
    kind: OrgKind


class OrganizationOut(Out):
    id: str
    name: str
    kind: OrgKind
    created_at: datetime
