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


class Scaling(BaseModel):
    """How a deployment's replica count moves: a fixed `replicas`, or `min_replicas` to
    `max_replicas` by load (see `scheduler/autoscale.py`)."""

    target_load: float = Field(
        8.0, gt=0, le=10_000, description="Requests in flight or queued that one replica carries"
    )
    ttft_target_ms: float | None = Field(
        None, gt=0, description="A p90 time to first token to stay under; null: none"
    )
    idle_s: float = Field(
        300.0, ge=1, le=7 * 86_400, description="With min_replicas 0: idle this long, scale to zero"
    )


class DeploymentCreate(Scaling):
    model: ModelName = Field(description="A model in the catalog")
    name: ModelName | None = Field(
        None, description="What clients put in `model`; default: the model's name"
    )
    replicas: int | None = Field(
        None,
        ge=0,
        le=10_000,
        description="A fixed count; with min/max, the count to start at (default: min, at least "
        "1 when max allows). Neither: 1",
    )
    min_replicas: int | None = Field(None, ge=0, le=10_000, description="Autoscaling floor")
    max_replicas: int | None = Field(None, ge=0, le=10_000, description="Autoscaling ceiling")
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

    def bounds(self) -> tuple[int, int, int]:
        """(replicas to start at, min, max). Raises ValueError when they contradict."""
        return resolve_bounds(self.replicas, self.min_replicas, self.max_replicas, None)


def resolve_bounds(
    replicas: int | None,
    low: int | None,
    high: int | None,
    current: tuple[int, int, int] | None,
) -> tuple[int, int, int]:
    """(replicas, min, max) from what was asked, over `current` (replicas, min, max) if any.

    `replicas` alone fixes the size; `min`/`max` set bounds (the other bound kept from
    `current`, or equal to the one given), and the count is kept within them.
    """
    if low is None and high is None:
        if replicas is None:
            return current or (1, 1, 1)
        return replicas, replicas, replicas
    was_low, was_high = (current[1], current[2]) if current else (None, None)
    low = low if low is not None else min(was_low if was_low is not None else 0, high or 0)
    high = high if high is not None else max(was_high if was_high is not None else low, low)
    if low > high:
        raise ValueError(f"min_replicas ({low}) is above max_replicas ({high})")
    if replicas is None:  # the count now, or a warm first replica, kept within the bounds
        return min(high, max(low, current[0] if current else 1)), low, high
    if not low <= replicas <= high:
        raise ValueError(f"replicas ({replicas}) is outside {low}..{high}")
    return replicas, low, high


class DeploymentChange(BaseModel):
    """A change of a deployment; fields left out stay as they are.

    Size: `replicas` alone fixes it; min/max (and the targets) autoscale. What replicas run
    (`model`, `engine`, `tensor_parallel_size`, `gpu_type`, `regions`) starts a new generation,
    rolled out a replica at a time while the old ones keep serving. `tier` applies at once.
    """

    model: ModelName | None = Field(None, description="Another catalog model to roll out")
    engine: Engine | None = None
    tensor_parallel_size: int | None = Field(None, ge=1, le=64)
    gpu_type: str | None = Field(None, min_length=1, max_length=100)
    regions: list[str] | None = None
    tier: Tier | None = None
    replicas: int | None = Field(None, ge=0, le=10_000)
    min_replicas: int | None = Field(None, ge=0, le=10_000)
    max_replicas: int | None = Field(None, ge=0, le=10_000)
    target_load: float | None = Field(None, gt=0, le=10_000)
    ttft_target_ms: float | None = Field(None, gt=0)
    idle_s: float | None = Field(None, ge=1, le=7 * 86_400)


class ReplicaLoadOut(BaseModel):
    """A replica's engine load as its node last reported it (with each heartbeat)."""

    running: int | None = Field(description="Requests being served; null: the engine does not say")
    waiting: int | None = Field(description="Requests queued for a slot")
    kv_cache_usage: float | None = Field(description="Fraction of the KV cache in use, 1 = full")
    reported_at: datetime


class ReplicaOut(Out):
    id: str
    node_id: str
    generation: int
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
    replicas: int  # wanted now
    ready_replicas: int
    generation: int  # of what replicas run; replicas of older ones are being rolled over
    min_replicas: int
    max_replicas: int
    target_load: float
    ttft_target_ms: float | None
    idle_s: float
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
