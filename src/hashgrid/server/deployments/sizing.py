"""What a replica of a deployment needs, engine by engine: memory for placement, and the share
of each GPU a GPU engine is told it may take.

The figures per engine (GPU-only, runtime overhead, sequences the KV cache is sized for) are the
engine table's (`contracts/engines.py`). llama.cpp allocates little beyond its weights and KV
cache. vLLM and SGLang batch sequences and take, on every GPU, a fixed fraction of the GPU's
memory for weights, activations and KV cache; they are told that fraction is the replica's
share, so replicas that share a GPU stay within what the scheduler gave each. (vLLM's
`--gpu-memory-utilization` is a per-instance limit in its current releases, checked at start
against the GPU's free memory; older releases (late 2024 and before) also counted other
processes' memory, so there a replica beside another gets less KV cache than planned.)
"""

import math
from typing import Any

from hashgrid.contracts.engines import ENGINES
from hashgrid.scheduler import Architecture, MemoryEstimate, estimate
from hashgrid.server.catalog.tables import CatalogModel
from hashgrid.server.deployments.tables import Deployment

MIB = 2**20
# For an engine the table no longer has (a row stored before it went): the smallest figures.
UNKNOWN_OVERHEAD_PER_RANK = 128 * MIB
# Bounds of the GPU memory fraction a GPU engine is given (its own default is 0.9).
MIN_FRACTION, MAX_FRACTION = 0.05, 0.95


def engine_of(deployment: Deployment, model: CatalogModel) -> str:
    return deployment.engine or model.engine


def gpu_only(engine: str) -> bool:
    """Whether `engine` serves only from GPUs (an unknown engine: no)."""
    facts = ENGINES.get(engine)
    return facts is not None and facts.gpu_only


def architecture_of(model: CatalogModel) -> Architecture | None:
    """The model's architecture figures, or None when absent or not as stored by the API."""
    raw: Any = model.architecture
    if not isinstance(raw, dict):
        return None
    try:
        return Architecture(
            layers=int(raw["layers"]),
            kv_heads=int(raw["kv_heads"]),
            head_dim=int(raw["head_dim"]),
            kv_bytes_per_element=int(raw.get("kv_bytes_per_element", 2)),
        )
    except (KeyError, TypeError, ValueError):
        return None


def replica_memory(deployment: Deployment, model: CatalogModel) -> MemoryEstimate:
    """Memory one replica of `deployment` needs over all its GPUs (or in RAM on a CPU node)."""
    facts = ENGINES.get(engine_of(deployment, model))
    return estimate(
        model.size_bytes,
        model.context_length,
        sequences=facts.sequences if facts is not None else 1,
        architecture=architecture_of(model),
        overhead_bytes_per_rank=(
            facts.overhead_per_rank_bytes if facts is not None else UNKNOWN_OVERHEAD_PER_RANK
        ),
        tensor_parallel_size=deployment.tensor_parallel_size,
    )


def gpu_memory_fraction(replica_bytes: int, gpu_totals: list[int]) -> float:
    """The fraction of each assigned GPU a GPU engine may take: the replica's share of the
    smallest, rounded down to a thousandth, within [MIN_FRACTION, MAX_FRACTION]."""
    if not gpu_totals or min(gpu_totals) <= 0:
        return MAX_FRACTION
    share = math.ceil(replica_bytes / len(gpu_totals))
    fraction = math.floor(1000 * share / min(gpu_totals)) / 1000
    return min(MAX_FRACTION, max(MIN_FRACTION, fraction))
