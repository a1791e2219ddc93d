from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from hashgrid.contracts.states import ReplicaStatus
from hashgrid.server.catalog.schemas import ModelName
from hashgrid.server.schemas_common import Out


class Tier(StrEnum):
    FIRM = "firm"  # never curtailed
    FLEX = "flex"  # cheaper; may move or pause when the site's power goes elsewhere


class DeploymentCreate(BaseModel):
    model: ModelName = Field(description="A model in the catalog")
    name: ModelName | None = Field(
        None, description="What clients put in `model`; default: the model's name"
    )
    replicas: int = Field(1, ge=0, le=10_000)
    regions: list[str] = Field(default_factory=list, description="Allowed regions; empty: any")
    tier: Tier = Tier.FLEX


class DeploymentScale(BaseModel):
    replicas: int = Field(ge=0, le=10_000)


class ReplicaOut(Out):
    id: str
    node_id: str
    status: ReplicaStatus
    endpoint: str | None
    reason: str | None
    updated_at: datetime


class DeploymentOut(BaseModel):
    id: str
    name: str
    model: str
    replicas: int
    ready_replicas: int
    regions: list[str]
    tier: Tier
    condition: str | None
    created_at: datetime
    replica_list: list[ReplicaOut]  # active replicas
    recent_failures: list[ReplicaOut]  # the newest failed replicas, with the reason of each
