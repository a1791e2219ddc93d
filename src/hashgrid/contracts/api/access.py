from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from hashgrid.contracts.api.common import Name


class Role(StrEnum):
    ADMIN = "admin"  # everything
    GATEWAY = "gateway"  # read the gateway feed, write usage records


class TokenCreate(BaseModel):
    name: Name
    role: Role


class TokenCreated(BaseModel):
    id: str
    name: str
    role: Role
    token: str  # shown once; only its hash is kept
    created_at: datetime
