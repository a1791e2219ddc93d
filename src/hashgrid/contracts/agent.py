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
from typing import Annotated, Self

from pydantic import BaseModel, Field, model_validator

from hashgrid.contracts.bounds import Count32, Count64, Finite, LongText, ShortText, text
from hashgrid.contracts.states import MinerAction, ReplicaStatus

# What the server stores of a body (a node's row, fingerprint and holdings, replica reports,
# miner results) is bounded as `contracts/bounds.py` says; the bounds are far above what a real
# machine reports.
Label = Annotated[str, text(1000)]  # a hardware or software description
# A memory size: at most 1 PiB, so that a node's capacity, summed over its GPUs, fits the
# `BigInteger` that holds it.
MemoryBytes = Annotated[int, Field(ge=0, le=2**50)]
Watts = Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False)]  # one GPU's

PROTOCOL_VERSION = 1
PROTOCOL_HEADER = "x-hashgrid-agent-protocol"


class GpuInfo(BaseModel):
    """One GPU as NVML sees it. Fields after the memory figures came later: older agents omit
    them, and None means NVML could not say (the GPU or driver does not support the query)."""

    index: Count32
    uuid: ShortText
    name: Label
    memory_total_bytes: MemoryBytes
    memory_free_bytes: MemoryBytes
    power_draw_w: Watts | None = None
    power_limit_w: Watts | None = None
    temperature_c: Count32 | None = None
    ecc_uncorrected: Count64 | None = None  # volatile totals, since the last driver load or reset
    ecc_corrected: Count64 | None = None
    # distinct critical XIDs since agent start
    xids: list[Count32] = Field(default_factory=list, max_length=1000)
    quarantined: bool = False  # no replica may use it: uncorrected ECC, critical XID, unreadable
    quarantine_reason: LongText | None = None


class Fingerprint(BaseModel):
    """What a node is: reported at join and refreshed with each heartbeat."""

    hostname: Label
    os: Label
    arch: Label
    cpu_model: Label
    cpu_count: Count32
    memory_total_bytes: MemoryBytes
    memory_available_bytes: MemoryBytes
    gpus: list[GpuInfo] = Field(default_factory=list, max_length=1024)
    gpu_driver: Label | None = None
    gpu_error: LongText | None = None  # why no GPU was found, when NVML could not answer
    cuda_driver: Label | None = None  # CUDA version the driver supports, e.g. "12.4"
    disk_total_bytes: Count64 | None = None  # the filesystem holding the agent's home
    disk_free_bytes: Count64 | None = None


class JoinRequest(BaseModel):
    protocol_version: Count32 = PROTOCOL_VERSION
    # Its secret, and (what an agent strips, though a hand-made call may not) the CA hash it
    # carries: `hg_join_<secret>.<64 hex>`.
    join_token: Annotated[str, text(200)]
    name: Annotated[str, text(100, min_length=1)]  # the node's, in `String(100)`
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

    A figure is None when the engine did not say: llama-cpp-python (llama.cpp's fallback where
    llama-server is not installed) has no metrics, and its load is what the gateways observe;
    llama-server has no KV-cache figure; a scrape that failed or timed out tells nothing.
    """

    replica_id: str = Field(max_length=64)
    running: Count32 | None = None  # requests being decoded or prefilled now
    waiting: Count32 | None = None  # requests queued for a slot
    kv_cache_usage: Finite | None = None  # fraction of the KV cache in use, 1 = full


class Holding(BaseModel):
    """One model file the node's model store holds."""

    source: Annotated[str, text(2000)]  # as a catalog model's `source`
    size_bytes: Count64
    sha256: Annotated[str, text(64)]
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
    # The node awaits a verification (`hashgrid nodes verify`, or never verified): benchmark the
    # reference model again now and report it, unless one is running or was reported since.
    verify: bool = False
    # The tunnel listeners of the gateways up now (wss://host:port/tunnel): the node keeps a
    # tunnel open to each, over which they send it requests (`agent/tunnel.py`).
    gateways: list[str] = Field(default_factory=list)


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
    # base URL of the engine's OpenAI API, e.g. http://10.0.0.5:40123
    endpoint: Annotated[str, text(500)] | None = None
    reason: LongText | None = None


class Benchmark(BaseModel):
    """A short real run of the reference model on the node: its prompt and generation speed.

    The agent generates a fixed number of tokens from a fixed prompt, greedily, so every node
    does the same work; the speeds are the best of a few rounds.
    """

    model: ShortText  # the reference model, e.g. "tiny-llama"
    engine: ShortText  # e.g. "llama-cpp-python 0.3.36"
    gpu_offload: bool  # the model's layers ran on a GPU
    prompt_tokens: Count32 = Field(gt=0)
    generated_tokens: Count32 = Field(gt=0)
    prompt_tokens_per_s: float = Field(gt=0, allow_inf_nan=False)
    generation_tokens_per_s: float = Field(gt=0, allow_inf_nan=False)
    seconds: float = Field(ge=0, allow_inf_nan=False)  # the whole run, loading included


class VerificationReport(BaseModel):
    """What the agent measured: a benchmark, or why it could not run one (never both)."""

    benchmark: Benchmark | None = None
    error: Annotated[str, text(2000, min_length=1)] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.benchmark is None) == (self.error is None):
            raise ValueError("give either a benchmark or an error")
        return self


class Verification(VerificationReport):
    """The control plane's verdict on a report, judged against the node's stored fingerprint;
    the class is the server's own, never one an agent sent."""

    capacity_class: str
    problems: list[str] = Field(default_factory=list)  # each refuses the node
    notes: list[str] = Field(default_factory=list)  # for an operator's eye; refuse nothing
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


Detail = Annotated[str, text(2000)]


class MinerOutcome(BaseModel):
    address: Annotated[str, text(255)]
    done: MinerAction | None  # what the miner now does; None: the order failed
    detail: Detail = ""  # why it failed, or why `done` is a fallback


class NodePowerOutcome(BaseModel):
    node: Annotated[str, text(100)]
    on: bool | None  # the power the BMC was left at; None: it failed
    detail: Detail = ""  # why it failed


class MinerResults(BaseModel):
    """What the site agent made of the orders at `revision`."""

    revision: Count64  # a `BigInteger` column
    results: list[MinerOutcome] = Field(max_length=100_000)
    nodes: list[NodePowerOutcome] = Field(default_factory=list, max_length=100_000)
