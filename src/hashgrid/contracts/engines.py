"""Every serving engine's facts, in one table that the server, the agent and the CLI read.

The server validates catalog models and deployments against it (which engines exist, which model
formats each takes) and sizes replicas from it (GPU-only, memory over weights and KV cache, how
many sequences the KV cache is sized for); the agent probes and scrapes engines by it (health
path, metrics path, the Prometheus names of their load figures); the CLI writes its help from it.
A new engine is one row here plus one agent module (`agent/engines/<name>.py`) that knows how to
launch it.

Metric names, as the engines register them:
- llama.cpp's `llama-server` (tools/server/server-task.cpp, `--metrics`): gauges
  `llamacpp:requests_processing` (slots busy) and `llamacpp:requests_deferred` (requests waiting
  for a slot); builds before mid-2025 also had `llamacpp:kv_cache_usage_ratio` (a fraction).
  llama-cpp-python's server, the fallback where llama-server is not installed, has no metrics.
- vLLM (vllm/v1/metrics/loggers.py, and docs.vllm.ai "Production Metrics"): gauges
  `vllm:num_requests_running`, `vllm:num_requests_waiting`, and the KV-cache fill as
  `vllm:kv_cache_usage_perc`, which replaced `vllm:gpu_cache_usage_perc` (both are a fraction,
  1 = full; versions in between export both with the same value). Labels: model_name, engine.
- SGLang (python/sglang/srt/metrics/collector.py, and docs.sglang.io "Production Metrics"):
  gauges `sglang:num_running_reqs`, `sglang:num_queue_reqs` and `sglang:token_usage` (fraction
  of the KV pool in use). Labels: model_name and ranks, among others.
"""

from dataclasses import dataclass
from typing import Annotated, Final

from pydantic import AfterValidator, Field

MIB: Final = 2**20


@dataclass(frozen=True)
class ModelFormat:
    """How a model's weights are laid out, and so how a node fetches them."""

    name: str
    # A repository is a folder (config, tokenizer, weight shards) fetched whole; otherwise the
    # weights are one file.
    repository: bool
    # In a repository: the files an engine reads (glob patterns); the others are not fetched.
    files: tuple[str, ...] = ()


FORMATS: Final[dict[str, ModelFormat]] = {
    f.name: f
    for f in (
        ModelFormat("gguf", repository=False),
        ModelFormat(
            "safetensors",
            repository=True,
            # Weights, configs (config.json, tokenizer.json, generation_config.json, the shards'
            # index), tokenizer vocabularies and chat templates; not .bin/.pth duplicates of the
            # weights, nor an `original/` checkpoint in another layout.
            files=("*.safetensors", "*.json", "*.model", "*.txt", "*.tiktoken", "*.jinja"),
        ),
    )
}


@dataclass(frozen=True)
class LoadMetrics:
    """Prometheus names of an engine's load gauges. Of each tuple the first name present is
    read; later ones are older names for the same figure."""

    running: tuple[str, ...]  # requests being prefilled or decoded
    waiting: tuple[str, ...]  # requests queued for a slot
    kv_cache_usage: tuple[str, ...] = ()  # fraction of the KV cache in use (1 = full)

    def names(self) -> frozenset[str]:
        return frozenset((*self.running, *self.waiting, *self.kv_cache_usage))


@dataclass(frozen=True)
class EngineFacts:
    name: str  # as catalog models and deployments name it
    gpu_only: bool  # cannot serve from a CPU node's RAM
    formats: tuple[str, ...]  # model formats it serves (keys of FORMATS)
    # Runtime over weights and KV cache, per tensor-parallel rank: llama.cpp's compute buffers;
    # a GPU engine's CUDA context, activations at its batch size and CUDA graphs.
    overhead_per_rank_bytes: int
    # Sequences at the full context length that a replica's KV cache is sized for: llama-server
    # is started with this many slots (`--parallel`), the GPU engines batch at least as many.
    sequences: int
    # GET answers 2xx once the engine serves and while it serves; it must not wait behind
    # requests (the agent probes it every few seconds).
    health_path: str
    metrics_path: str | None  # Prometheus text with the load figures below
    load_metrics: LoadMetrics | None

    @property
    def where(self) -> str:
        return "GPUs only" if self.gpu_only else "CPU or GPU"


ENGINES: Final[dict[str, EngineFacts]] = {
    e.name: e
    for e in (
        EngineFacts(
            name="llamacpp",
            gpu_only=False,
            formats=("gguf",),
            overhead_per_rank_bytes=128 * MIB,
            sequences=4,
            health_path="/health",
            metrics_path="/metrics",
            load_metrics=LoadMetrics(
                running=("llamacpp:requests_processing",),
                waiting=("llamacpp:requests_deferred",),
                kv_cache_usage=("llamacpp:kv_cache_usage_ratio",),
            ),
        ),
        EngineFacts(
            name="vllm",
            gpu_only=True,
            formats=("safetensors", "gguf"),
            overhead_per_rank_bytes=2048 * MIB,
            sequences=4,
            health_path="/health",  # 200 once the engine is up, 503 when it died
            metrics_path="/metrics",
            load_metrics=LoadMetrics(
                running=("vllm:num_requests_running",),
                waiting=("vllm:num_requests_waiting",),
                kv_cache_usage=("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
            ),
        ),
        EngineFacts(
            name="sglang",
            gpu_only=True,
            formats=("safetensors", "gguf"),
            overhead_per_rank_bytes=2048 * MIB,
            sequences=4,
            health_path="/health",
            metrics_path="/metrics",
            load_metrics=LoadMetrics(
                running=("sglang:num_running_reqs",),
                waiting=("sglang:num_queue_reqs",),
                kv_cache_usage=("sglang:token_usage",),
            ),
        ),
    )
}

DEFAULT_ENGINE: Final = "llamacpp"


def engine_help() -> str:
    """The engines and where they run, for help texts: `llamacpp (CPU or GPU), vllm or ...`."""
    by_where: dict[str, list[str]] = {}
    for e in ENGINES.values():
        by_where.setdefault(e.where, []).append(e.name)
    items = [
        f"{name} ({where})" if i == len(names) - 1 else name
        for where, names in by_where.items()
        for i, name in enumerate(names)
    ]
    return ", ".join(items[:-1]) + (" or " if len(items) > 1 else "") + items[-1]


def default_engine(format: str) -> str:
    """The engine a model in `format` gets when none is named: llama.cpp where it can serve it,
    else the first in the table that can."""
    if accepts(DEFAULT_ENGINE, format):
        return DEFAULT_ENGINE
    return next((e.name for e in ENGINES.values() if format in e.formats), DEFAULT_ENGINE)


def accepts(engine: str, format: str) -> bool:
    """Whether `engine` serves models in `format`."""
    facts = ENGINES.get(engine)
    return facts is not None and format in facts.formats


def _known_engine(name: str) -> str:
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}: expected one of {', '.join(ENGINES)}")
    return name


def _known_format(name: str) -> str:
    if name not in FORMATS:
        raise ValueError(f"unknown model format {name!r}: expected one of {', '.join(FORMATS)}")
    return name


# As API fields: a name from the table, shown in the OpenAPI schema as an enum.
EngineName = Annotated[
    str, AfterValidator(_known_engine), Field(json_schema_extra={"enum": list(ENGINES)})
]
FormatName = Annotated[
    str, AfterValidator(_known_format), Field(json_schema_extra={"enum": list(FORMATS)})
]
