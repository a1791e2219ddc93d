from datetime import datetime

from pydantic import BaseModel

from hashgrid.server.schemas_common import Name, Out


class KeyCreate(BaseModel):
    customer: Name
    name: Name = "default"


class KeyOut(Out):
    id: str
    customer_id: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str  # the secret: shown in this response only
