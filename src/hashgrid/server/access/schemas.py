from datetime import datetime

from pydantic import BaseModel

from hashgrid.server.access.tables import Role
from hashgrid.server.schemas_common import Name


class TokenCreate(BaseModel):
    name: Name
    role: Role


class TokenCreated(BaseModel):
    id: str
    name: str
    role: Role
    token: str  # shown once; only its hash is kept
    created_at: datetime
