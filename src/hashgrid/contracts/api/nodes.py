from datetime import datetime

from pydantic import BaseModel, Field

from hashgrid.contracts.agent import Fingerprint, Holding, Verification
from hashgrid.contracts.api.common import ReliabilityOut
from hashgrid.contracts.states import NodeAdmission, NodePower, NodeStatus


class NodeOut(BaseModel):
    id: str
    name: str
    site: str
    status: NodeStatus
    capacity_bytes: int
    fingerprint: Fingerprint
    joined_at: datetime
    status_changed_at: datetime
    cordoned: bool = False  # takes no new replicas
    power: NodePower = NodePower.ON  # standby: powered off while idle; waking: for work
    power_refusals: int = 0  # power-offs its BMC refused in a row
    drain_deadline: datetime | None = None  # draining: replicas stop by then
    # The models its store holds, most recently used first; null until its agent reported them.
    holdings: list[Holding] | None = None
    # Derived by the server from the benchmark the agent ran at join (None until it reported).
    capacity_class: str | None = None
    verification: Verification | None = None
    # Whether it takes customer traffic, and why it is where it is (the claim and the figure
    # a refusal rests on, the spot-checks a quarantine rests on).
    admission: NodeAdmission = NodeAdmission.PENDING
    admission_reason: str | None = None
    # Its reliability over the last day, with the parts behind it; None until first scored.
    reliability: ReliabilityOut | None = None


class DrainRequest(BaseModel):
    deadline_s: float = Field(60.0, gt=0, le=86400, description="Seconds engines get to finish")
