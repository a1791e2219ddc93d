from datetime import datetime
from enum import StrEnum
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hashgrid.contracts.api.catalog import ModelName, Task
from hashgrid.contracts.api.common import Name, Out
from hashgrid.contracts.api.sites import Region
from hashgrid.contracts.bounds import text
from hashgrid.contracts.engines import EngineName, engine_help
from hashgrid.contracts.states import ReplicaStatus


class Tier(StrEnum):
    FIRM = "firm"  # never curtailed
    FLEX = "flex"  # cheaper; may move or pause when the site's power goes elsewhere


Engine = EngineName
GpuType = Annotated[str, text(100, min_length=1)]
MAX_REGIONS = 100
MAX_TTFT_MS = 3_600_000  # an hour: any target above it is none


def endpoint_base(url: str) -> str:
    """The base URL of an OpenAI-compatible server, as gateways append `/v1/...` to it.

    Accepts what operators paste, with or without the `/v1` that OpenAI clients' `base_url`
    carries. Raises ValueError for anything but an absolute http(s) URL without query or
    fragment.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("endpoint must be an absolute http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ValueError("endpoint must have no query or fragment")
    try:
        port = parts.port
    except ValueError as e:
        raise ValueError(f"endpoint has a bad port: {e}") from None
    if port == 0:
        raise ValueError("endpoint has port 0")
    path = parts.path.rstrip("/").removesuffix("/v1").rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{path}"


class Scaling(BaseModel):
    """How a deployment's replica count moves: a fixed `replicas`, or `min_replicas` to
    `max_replicas` by load (see `scheduler/autoscale.py`)."""

    target_load: float = Field(
        8.0,
        gt=0,
        le=10_000,
        allow_inf_nan=False,
        description="Requests in flight or queued that one replica carries",
    )
    ttft_target_ms: float | None = Field(
        None,
        gt=0,
        le=MAX_TTFT_MS,
        allow_inf_nan=False,
        description="A p90 time to first token to stay under; null: none",
    )
    idle_s: float = Field(
        300.0,
        ge=1,
        le=7 * 86_400,
        allow_inf_nan=False,
        description="With min_replicas 0: idle this long, scale to zero",
    )


class DeploymentCreate(Scaling):
    """A model to serve: a catalog `model` whose replicas placement puts on nodes, or an
    `endpoint` already serving it outside hashgrid (then `name` is required and placement
    fields are refused)."""

    model: ModelName | None = Field(None, description="A model in the catalog; or give endpoint")
    name: ModelName | None = Field(
        None, description="What clients put in `model`; default: the model's name"
    )
    endpoint: Annotated[str, text(500)] | None = Field(
        None,
        description="Base URL of an OpenAI-compatible server run outside hashgrid, with or "
        "without /v1: routed as the deployment's one replica (no catalog model, no placement)",
    )
    site: Name | None = Field(
        None,
        description="With endpoint: the site it is routed as part of (latency, power state); "
        "default: the only site, when there is exactly one",
    )
    task: Task | None = Field(
        None, description="With endpoint: generate (chat, completions; default) or embed"
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
    regions: list[Region] = Field(
        default_factory=list, max_length=MAX_REGIONS, description="Allowed regions; empty: any"
    )
    tier: Tier = Tier.FLEX
    engine: Engine | None = Field(
        None,
        description=f"{engine_help()}; default: the model's",
    )
    tensor_parallel_size: int = Field(
        1, ge=1, le=64, description="GPUs per replica, on one node (more than 1: GPUs only)"
    )
    gpu_type: GpuType | None = Field(
        None,
        description="Only GPUs whose name contains this (any case), e.g. H100",
    )
    customer: Name | None = Field(
        None,
        description="The customer organization it is private to (only its keys see and call "
        "it); default: public, in the platform's catalog (every customer's keys may call it)",
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint_base(cls, value: str | None) -> str | None:
        return None if value is None else endpoint_base(value)

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
    rolled out a replica at a time while the old ones keep serving. `tier` and `customer`
    apply at once (`customer` null: public).
    """

    model: ModelName | None = Field(None, description="Another catalog model to roll out")
    engine: Engine | None = None
    tensor_parallel_size: int | None = Field(None, ge=1, le=64)
    gpu_type: GpuType | None = None
    regions: list[Region] | None = Field(None, max_length=MAX_REGIONS)
    tier: Tier | None = None
    replicas: int | None = Field(None, ge=0, le=10_000)
    min_replicas: int | None = Field(None, ge=0, le=10_000)
    max_replicas: int | None = Field(None, ge=0, le=10_000)
    target_load: float | None = Field(None, gt=0, le=10_000, allow_inf_nan=False)
    ttft_target_ms: float | None = Field(None, gt=0, le=MAX_TTFT_MS, allow_inf_nan=False)
    idle_s: float | None = Field(None, ge=1, le=7 * 86_400, allow_inf_nan=False)
    customer: Name | None = Field(
        None, description="The customer organization it is private to; null: public"
    )


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
    contract_id: str | None = None  # placed for this compute contract (reserved replicas)

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
    model: str | None  # None: external (see endpoint)
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
    engine: str | None  # None: external
    tensor_parallel_size: int
    gpu_type: str | None
    condition: str | None
    # An external deployment's server and site; None for one placed on nodes.
    endpoint: str | None = None
    site: str | None = None
    task: str = "generate"
    # The customer organization it is private to (only its keys see and call it); None: public.
    customer: str | None = None
    created_at: datetime
    replica_list: list[ReplicaOut]  # active replicas
    recent_failures: list[ReplicaOut]  # the newest failed replicas, with the reason of each
    events: list[EventOut] = []  # the newest first: placements, removals, ready, failed, waits
