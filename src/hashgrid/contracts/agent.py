"""The agent protocol, version 1: everything an agent and the control plane say to each other.

The agent only ever dials out (it works behind NAT):
1. `POST /api/v1/agent/join` trades a one-time site join token for a node credential.
2. `POST /api/v1/agent/heartbeat` every `heartbeat_interval_s` keeps the node alive, and
   carries the load of each ready engine and, when they changed, the models the node holds.
3. `GET /api/v1/agent/assignments?after=REV&wait=S` long-polls the replicas it should run;
   it answers at once when the node's assignments are newer than REV.
4. `PUT /api/v1/agent/replicas/{id}/state` reports what became of each replica.
5. `POST /api/v1/agent/verification` reports the short benchmark the agent runs after joining;
   the control plane judges it against the node's fingerprint and answers with the verdict.
6. A site agent (one that drives its site's ASIC miners) long-polls
   `GET /api/v1/agent/miners?after=REV&wait=S` for the `MinerOrders` of its site, applies them
   and posts what became of each to `POST /api/v1/agent/miners/results`.
Every call after join carries `Authorization: Bearer <node credential>` and the
`PROTOCOL_HEADER`.
"""

from datetime import datetime
from typing import Self

from pydantic import BaseModel, Field, model_validator

from hashgrid.contracts.states import MinerAction, ReplicaStatus

PROTOCOL_VERSION = 1
PROTOCOL_HEADER = "x-hashgrid-agent-protocol"


class GpuInfo(BaseModel):
    """One GPU as NVML sees it. Fields after the memory figures came later: older agents omit
    them, and None means NVML could not say (the GPU or driver does not support the query)."""

    index: int
    uuid: str
    name: str
    memory_total_bytes: int
    memory_free_bytes: int
    power_draw_w: float | None = None
    power_limit_w: float | None = None
    temperature_c: int | None = None
    ecc_uncorrected: int | None = None  # volatile totals, since the last driver load or reset
    ecc_corrected: int | None = None
    xids: list[int] = Field(default_factory=list)  # distinct critical XIDs since agent start
    quarantined: bool = False  # no replica may use it: uncorrected ECC, critical XID, unreadable
    quarantine_reason: str | None = None


class Fingerprint(BaseModel):
    """What a node is: reported at join and refreshed with each heartbeat."""

    hostname: str
    os: str
    arch: str
    cpu_model: str
    cpu_count: int
    memory_total_bytes: int
    memory_available_bytes: int
    gpus: list[GpuInfo] = Field(default_factory=list)
    gpu_driver: str | None = None
    gpu_error: str | None = None  # why no GPU was found, when NVML could not answer
    cuda_driver: str | None = None  # CUDA version the driver supports, e.g. "12.4"
    disk_total_bytes: int | None = None  # the filesystem holding the agent's home
    disk_free_bytes: int | None = None


class JoinRequest(BaseModel):
    protocol_version: int = PROTOCOL_VERSION
    join_token: str
    name: str
    fingerprint: Fingerprint


class JoinResponse(BaseModel):
    protocol_version: int = PROTOCOL_VERSION
    node_id: str
    node_name: str
    site: str
    credential: str
    heartbeat_interval_s: float


# The most replica loads and holdings one heartbeat may carry; far above what a node runs or
# stores, and a bound on what the server keeps in memory per node.
MAX_REPORTED = 1024


class ReplicaLoad(BaseModel):
    """One ready replica's engine load, as its agent read it from the engine.

    A figure is None when the engine did not say: llama.cpp has no metrics (its load is what
    the gateways observe), and a scrape that failed or timed out tells nothing.
    """

    replica_id: str = Field(max_length=64)
    running: int | None = None  # requests being decoded or prefilled now
    waiting: int | None = None  # requests queued for a slot
    kv_cache_usage: float | None = None  # fraction of the KV cache in use, 1 = full


class Holding(BaseModel):
    """One model file the node's model store holds."""

    source: str
    size_bytes: int
    sha256: str
    last_used: datetime


class Heartbeat(BaseModel):
    """Added fields have defaults, so beats from older agents still validate."""

    fingerprint: Fingerprint | None = None
    # Every ready replica this node serves, with the load its engine reported.
    replicas: list[ReplicaLoad] = Field(default_factory=list, max_length=MAX_REPORTED)
    # What the model store holds: sent when it changed since the last acknowledged beat and
    # with each fingerprint; None means "as last sent".
    holdings: list[Holding] | None = Field(default=None, max_length=MAX_REPORTED)


class HeartbeatAck(BaseModel):
    node_id: str
    heartbeat_interval_s: float
    assignments_revision: int
    # How long the control plane waits for a silent node before declaring it lost: the agent
    # retries beats well inside it while the control plane is away (None: an older server).
    node_ttl_s: float | None = None


class ModelSpec(BaseModel):
    """Where an engine finds a model's weights, and how to serve it."""

    name: str  # what clients put in `model`
    source: str  # a path on the node (URLs and hub ids come with the model store)
    format: str = "gguf"
    context_length: int = 2048
    tensor_parallel_size: int = 1
    quantization: str | None = None  # e.g. awq, gptq, fp8 (vLLM, SGLang)
    gpu_memory_fraction: float = 0.9  # of each assigned GPU the engine may take
    task: str = "generate"  # "generate" (chat, completions) or "embed" (embeddings)
    size_bytes: int | None = None
    sha256: str | None = None


class Assignment(BaseModel):
    replica_id: str
    deployment: str
    engine: str
    model: ModelSpec
    gpus: list[int] = Field(default_factory=list)  # NVML indices; empty: CPU


class Assignments(BaseModel):
    revision: int
    assignments: list[Assignment]
    # How long an engine whose replica is no longer assigned may finish in-flight requests.
    stop_grace_s: float = 30.0


class ReplicaReport(BaseModel):
    status: ReplicaStatus
    endpoint: str | None = None  # base URL of the engine's OpenAI API, e.g. http://10.0.0.5:40123
    reason: str | None = None


class Benchmark(BaseModel):
    """A short real run of the reference model on the node: its prompt and generation speed.

    The agent generates a fixed number of tokens from a fixed prompt, greedily, so every node
    does the same work; the speeds are the best of a few rounds.
    """

    model: str = Field(max_length=100)  # the reference model, e.g. "tiny-llama"
    engine: str = Field(max_length=100)  # e.g. "llama-cpp-python 0.3.36"
    gpu_offload: bool  # the model's layers ran on a GPU
    prompt_tokens: int = Field(gt=0)
    generated_tokens: int = Field(gt=0)
    prompt_tokens_per_s: float = Field(gt=0, allow_inf_nan=False)
    generation_tokens_per_s: float = Field(gt=0, allow_inf_nan=False)
    seconds: float = Field(ge=0, allow_inf_nan=False)  # the whole run, loading included


class VerificationReport(BaseModel):
    """What the agent measured: a benchmark, or why it could not run one (never both)."""

    benchmark: Benchmark | None = None
    error: str | None = Field(None, min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.benchmark is None) == (self.error is None):
            raise ValueError("give either a benchmark or an error")
        return self


class Verification(VerificationReport):
    """The control plane's verdict on a report, judged against the node's stored fingerprint;
    the class is the server's own, never one an agent sent."""

    capacity_class: str
    problems: list[str] = Field(default_factory=list)
    verified_at: datetime


class MinerOrder(BaseModel):
    """What one miner of the site should be doing; level-triggered, sent again until changed."""

    address: str = Field(min_length=1, max_length=255)  # the miner's IP address on the site
    action: MinerAction
    watts: int | None = Field(None, ge=0)  # for `power` only

    @model_validator(mode="after")
    def _watts_only_for_power(self) -> Self:
        if (self.action == MinerAction.POWER) != (self.watts is not None):
            raise ValueError("watts go with a power action, and only with it")
        return self


class NodePowerOrder(BaseModel):
    """A GPU node of the site to power on or off through its BMC; level-triggered. Nodes
    hashgrid does not manage (powered, or without a BMC in the power model) get no order."""

    node: str = Field(min_length=1, max_length=100)  # the node's name
    bmc: str = Field(min_length=1, max_length=1000)  # its Redfish ComputerSystem URL
    on: bool


class MinerOrders(BaseModel):
    """Every miner of the site with its target. `reason` says which decision set them: the
    power plan of an interval, or a curtailment in force. `nodes`: GPU nodes to power on or
    off (idle ones off, ones that work needs on)."""

    revision: int
    site: str
    reason: str
    orders: list[MinerOrder]
    nodes: list[NodePowerOrder] = Field(default_factory=list)


class MinerOutcome(BaseModel):
    address: str = Field(max_length=255)
    done: MinerAction | None  # what the miner now does; None: the order failed
    detail: str = Field("", max_length=2000)  # why it failed, or why `done` is a fallback


class NodePowerOutcome(BaseModel):
    node: str = Field(max_length=100)
    on: bool | None  # the power the BMC was left at; None: it failed
    detail: str = Field("", max_length=2000)  # why it failed


class MinerResults(BaseModel):
    """What the site agent made of the orders at `revision`."""

    revision: int
    results: list[MinerOutcome] = Field(max_length=100_000)
    nodes: list[NodePowerOutcome] = Field(default_factory=list, max_length=100_000)
