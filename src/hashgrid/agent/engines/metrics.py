"""An engine's load, read from the Prometheus text its /metrics serves.

Metric names, as the engines register them:
- vLLM (vllm/v1/metrics/loggers.py, and docs.vllm.ai "Production Metrics"): gauges
  `vllm:num_requests_running`, `vllm:num_requests_waiting`, and the KV-cache fill as
  `vllm:kv_cache_usage_perc`, which replaced `vllm:gpu_cache_usage_perc` (both are a fraction,
  1 = full; versions in between export both with the same value). Labels: model_name, engine.
- SGLang (python/sglang/srt/metrics/collector.py, and docs.sglang.io "Production Metrics"):
  gauges `sglang:num_running_reqs`, `sglang:num_queue_reqs` and `sglang:token_usage` (fraction
  of the KV pool in use). Labels: model_name and ranks, among others.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class EngineLoad:
    running: int  # requests being decoded or prefilled now
    waiting: int  # requests queued for a slot
    kv_cache_usage: float | None  # fraction of the KV cache in use; None when not reported


@dataclass(frozen=True)
class _Names:
    running: str
    waiting: str
    # The first of these present is read; later ones are older names for the same figure.
    kv_cache_usage: tuple[str, ...]


_ENGINE_METRICS: dict[str, _Names] = {
    "vllm": _Names(
        running="vllm:num_requests_running",
        waiting="vllm:num_requests_waiting",
        kv_cache_usage=("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
    ),
    "sglang": _Names(
        running="sglang:num_running_reqs",
        waiting="sglang:num_queue_reqs",
        kv_cache_usage=("sglang:token_usage",),
    ),
}

IDLE = EngineLoad(running=0, waiting=0, kv_cache_usage=None)


def _parse(text: str) -> list[Sample]:
    # Imported on first use: only vLLM and SGLang nodes scrape, and prometheus_client brings
    # some 9 MB of modules that a llama.cpp node's agent would otherwise carry for nothing.
    from prometheus_client.parser import text_string_to_metric_families

    return [
        Sample(s.name, s.labels, float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def parse_samples(text: str) -> list[Sample]:
    """Every sample with a finite value in `text`. Malformed lines are skipped, never raised:
    a scrape that is partly garbled still yields its readable lines."""
    try:
        samples = _parse(text)
    except Exception:  # the parser raises ValueError and others on odd input
        samples = []
        for line in text.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                samples += _parse(line + "\n")
            except Exception:
                continue
    return [s for s in samples if math.isfinite(s.value)]


def _values(samples: Iterable[Sample], name: str) -> list[float]:
    return [s.value for s in samples if s.name == name]


def _count(samples: list[Sample], name: str) -> int:
    # Summed over label sets: several engines (data parallel) or models behind one endpoint.
    # A negative count is nonsense and is left out rather than subtracted from the others.
    return round(sum(v for v in _values(samples, name) if v > 0))


def load_from_metrics(engine_name: str, text: str) -> EngineLoad:
    """The load `engine_name` reports in its Prometheus `text`: request counts summed over
    label sets, and the fullest KV cache among them. An unknown engine, or a metric the text
    lacks, reads as zero requests and an unknown KV-cache fill."""
    names = _ENGINE_METRICS.get(engine_name)
    if names is None or not isinstance(text, str):
        return IDLE
    return _load(names, parse_samples(text))


def _load(names: _Names, samples: list[Sample]) -> EngineLoad:
    kv_cache_usage: float | None = None
    for name in names.kv_cache_usage:
        values = _values(samples, name)
        if values:
            kv_cache_usage = max(values)
            break
    return EngineLoad(
        running=_count(samples, names.running),
        waiting=_count(samples, names.waiting),
        kv_cache_usage=kv_cache_usage,
    )


def read_load(engine_name: str, text: str) -> EngineLoad | None:
    """Like `load_from_metrics`, but None when `text` has none of `engine_name`'s load figures:
    a page that is not this engine's metrics (an error page, a proxy's answer, garbage) tells
    nothing, and must not read as an idle engine."""
    names = _ENGINE_METRICS.get(engine_name)
    if names is None or not isinstance(text, str):
        return None
    samples = parse_samples(text)
    wanted = {names.running, names.waiting, *names.kv_cache_usage}
    if not any(s.name in wanted for s in samples):
        return None
    return _load(names, samples)
