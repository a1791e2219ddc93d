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


class ReplicaLoadOut(BaseModel):
    """A replica's engine load as its node last reported it (with each heartbeat)."""

    running: int | None = Field(description="Requests being served; null: the engine does not say")
    waiting: int | None = Field(description="Requests queued for a slot")
    kv_cache_usage: float | None = Field(description="Fraction of the KV cache in use, 1 = full")
    reported_at: datetime


class ReplicaOut(Out):
    id: str
    node_id: str
    status: ReplicaStatus
    endpoint: str | None
    reason: str | None
    updated_at: datetime
    # null when the node reported none within the last three heartbeats
    load: ReplicaLoadOut | None = None


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
