"""An engine's load, read from the Prometheus text its /metrics serves, by the metric names of
the engine table (`contracts/engines.py`, which says where each engine registers them)."""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hashgrid.contracts.engines import ENGINES, LoadMetrics


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


IDLE = EngineLoad(running=0, waiting=0, kv_cache_usage=None)


def _parse(text: str) -> list[Sample]:
    # Imported on first use: only nodes whose engines have metrics scrape, and prometheus_client
    # brings some 9 MB of modules that an agent would otherwise carry for nothing.
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


def _first_present(samples: list[Sample], names: tuple[str, ...]) -> list[float]:
    for name in names:
        values = _values(samples, name)
        if values:
            return values
    return []


def _count(samples: list[Sample], names: tuple[str, ...]) -> int:
    # Summed over label sets: several engines (data parallel) or models behind one endpoint.
    # A negative count is nonsense and is left out rather than subtracted from the others.
    return round(sum(v for v in _first_present(samples, names) if v > 0))


def _names(engine_name: str) -> LoadMetrics | None:
    facts = ENGINES.get(engine_name)
    return facts.load_metrics if facts is not None else None


def load_from_metrics(engine_name: str, text: str) -> EngineLoad:
    """The load `engine_name` reports in its Prometheus `text`: request counts summed over
    label sets, and the fullest KV cache among them. An unknown engine, or a metric the text
    lacks, reads as zero requests and an unknown KV-cache fill."""
    names = _names(engine_name)
    if names is None or not isinstance(text, str):
        return IDLE
    return _load(names, parse_samples(text))


def _load(names: LoadMetrics, samples: list[Sample]) -> EngineLoad:
    kv_values = _first_present(samples, names.kv_cache_usage)
    kv_cache_usage = max(kv_values) if kv_values else None
    return EngineLoad(
        running=_count(samples, names.running),
        waiting=_count(samples, names.waiting),
        kv_cache_usage=kv_cache_usage,
    )


def read_load(engine_name: str, text: str) -> EngineLoad | None:
    """Like `load_from_metrics`, but None when `text` has none of `engine_name`'s load figures:
    a page that is not this engine's metrics (an error page, a proxy's answer, garbage) tells
    nothing, and must not read as an idle engine."""
    names = _names(engine_name)
    if names is None or not isinstance(text, str):
        return None
    samples = parse_samples(text)
    wanted = names.names()
    if not any(s.name in wanted for s in samples):
        return None
    return _load(names, samples)
