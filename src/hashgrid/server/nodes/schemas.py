from datetime import datetime

from pydantic import BaseModel

from hashgrid.contracts.agent import Fingerprint
from hashgrid.contracts.states import NodeStatus


class NodeOut(BaseModel):
    id: str
    name: str
    site: str
    status: NodeStatus
    capacity_bytes: int
    fingerprint: Fingerprint
    joined_at: datetime
    status_changed_at: datetime
