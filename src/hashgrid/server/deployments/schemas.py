from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hashgrid.contracts.states import ReplicaStatus
from hashgrid.server.catalog.schemas import ModelName
from hashgrid.server.schemas_common import Out


class Tier(StrEnum):
    FIRM = "firm"  # never curtailed
    FLEX = "flex"  # cheaper; may move or pause when the site's power goes elsewhere


Engine = Literal["llamacpp", "vllm", "sglang"]


class DeploymentCreate(BaseModel):
    model: ModelName = Field(description="A model in the catalog")
    name: ModelName | None = Field(
        None, description="What clients put in `model`; default: the model's name"
    )
    replicas: int = Field(1, ge=0, le=10_000)
    regions: list[str] = Field(default_factory=list, description="Allowed regions; empty: any")
    tier: Tier = Tier.FLEX
    engine: Engine | None = Field(
        None,
        description="llamacpp (CPU or GPU), vllm or sglang (GPUs only); default: the model's",
    )
    tensor_parallel_size: int = Field(
        1, ge=1, le=64, description="GPUs per replica, on one node (more than 1: GPUs only)"
    )
    gpu_type: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="Only GPUs whose name contains this (any case), e.g. H100",
    )


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
    gpus: list[int] = Field(default_factory=list, description="NVML indices; empty: on CPU")
    status: ReplicaStatus
    endpoint: str | None
    reason: str | None
    updated_at: datetime
    # null when the node reported none within the last three heartbeats
    load: ReplicaLoadOut | None = None

    @field_validator("gpus", mode="before")
    @classmethod
    def _none_is_cpu(cls, value: object) -> object:
        return [] if value is None else value


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    message: str


class DeploymentOut(BaseModel):
    id: str
    name: str
    model: str
    replicas: int
    ready_replicas: int
    regions: list[str]
    tier: Tier
    engine: str
    tensor_parallel_size: int
    gpu_type: str | None
    condition: str | None
    created_at: datetime
    replica_list: list[ReplicaOut]  # active replicas
    recent_failures: list[ReplicaOut]  # the newest failed replicas, with the reason of each
    events: list[EventOut] = []  # the newest first: placements, removals, ready, failed, waits
