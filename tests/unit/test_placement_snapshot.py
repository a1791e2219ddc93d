"""How the server turns its rows into the scheduler's snapshot, and sizes replicas per engine:
pure functions over rows that are never stored here."""

from typing import Any

import pytest

from hashgrid.contracts.states import NodeStatus
from hashgrid.scheduler import GpuView, Tier
from hashgrid.server.catalog.tables import CatalogModel
from hashgrid.server.deployments.sizing import (
    MAX_FRACTION,
    MIN_FRACTION,
    architecture_of,
    gpu_memory_fraction,
    replica_memory,
)
from hashgrid.server.deployments.tables import Deployment
from hashgrid.server.nodes.tables import Node
from hashgrid.server.reconcile.placement import deployment_view, holdings_of, node_view

GIB = 2**30
KIB = 2**10


def model(**overrides: Any) -> CatalogModel:
    fields: dict[str, Any] = {
        "id": "m",
        "name": "m",
        "source": "hf://org/repo/m.gguf",
        "format": "gguf",
        "engine": "llamacpp",
        "size_bytes": 16 * GIB,
        "context_length": 8192,
        "architecture": None,
    }
    return CatalogModel(**(fields | overrides))


def deployment(**overrides: Any) -> Deployment:
    fields: dict[str, Any] = {
        "id": "d",
        "name": "d",
        "model_id": "m",
        "replicas": 2,
        "regions": ["us"],
        "tier": "flex",
        "engine": None,
        "tensor_parallel_size": 1,
        "gpu_type": None,
    }
    return Deployment(**(fields | overrides))


def node(fingerprint: dict[str, Any], **overrides: Any) -> Node:
    fields: dict[str, Any] = {
        "id": "n",
        "site_id": "s",
        "status": NodeStatus.READY,
        "fingerprint": fingerprint,
        "capacity_bytes": 7 * GIB,
        "cordoned": False,
        "drain_deadline": None,
        "holdings": None,
    }
    return Node(**(fields | overrides))


GPU = {
    "index": 3,
    "uuid": "GPU-a",
    "name": "NVIDIA L4",
    "memory_total_bytes": 24 * GIB,
    "memory_free_bytes": 23 * GIB,
}


def test_a_node_view_carries_its_gpus_from_the_fingerprint_skipping_malformed_ones() -> None:
    bad = {"index": "x", "name": "broken"}
    quarantined = GPU | {"index": 4, "uuid": "GPU-b", "quarantined": True}
    fingerprint = {"memory_total_bytes": 64 * GIB, "gpus": [GPU, bad, quarantined, 7]}
    view = node_view(node(fingerprint))
    assert view.gpus == (
        GpuView(3, "NVIDIA L4", 24 * GIB),
        GpuView(4, "NVIDIA L4", 24 * GIB, quarantined=True),
    )
    assert view.memory_bytes == 64 * GIB


def test_a_node_without_readable_memory_falls_back_to_its_stored_capacity() -> None:
    assert node_view(node({})).memory_bytes == 7 * GIB
    assert node_view(node({"memory_total_bytes": "lots"})).gpus == ()


def test_a_draining_or_lost_node_is_not_schedulable_and_a_cordon_is_kept() -> None:
    from datetime import UTC, datetime

    assert not node_view(node({}, drain_deadline=datetime.now(UTC))).schedulable
    assert not node_view(node({}, status=NodeStatus.LOST)).schedulable
    assert node_view(node({}, cordoned=True)).cordoned


def test_holdings_are_unknown_until_reported_and_junk_entries_are_ignored() -> None:
    assert holdings_of(None) is None
    assert holdings_of({"source": "x"}) is None
    assert holdings_of([]) == frozenset()
    raw = [{"source": "hf://a", "size_bytes": 1}, {"size_bytes": 2}, "hf://b", {"source": 3}]
    assert holdings_of(raw) == frozenset({"hf://a"})


def test_a_deployment_view_takes_engine_tier_regions_and_source() -> None:
    view = deployment_view(deployment(engine="vllm", tensor_parallel_size=2), model(), 10)
    assert view.gpu_only
    assert view.tensor_parallel_size == 2
    assert view.tier == Tier.FLEX
    assert view.regions == frozenset({"us"})
    assert view.source == "hf://org/repo/m.gguf"
    assert not deployment_view(deployment(), model(), 10).gpu_only  # llama.cpp: CPU too
    assert deployment_view(deployment(tier="firm"), model(), 10).tier == Tier.FIRM


def test_replica_memory_counts_kv_cache_from_the_architecture_and_the_engines_batch() -> None:
    arch = {"layers": 32, "kv_heads": 8, "head_dim": 128}
    llama = replica_memory(deployment(), model(architecture=arch))
    assert llama.kv_cache_bytes == 4 * 128 * KIB * 8192  # llama-server's four slots
    vllm = replica_memory(
        deployment(engine="vllm", tensor_parallel_size=2), model(architecture=arch)
    )
    assert vllm.kv_cache_bytes == 4 * 128 * KIB * 8192  # four sequences at once
    assert vllm.overhead_bytes == 2 * 2 * GIB  # per rank
    assert vllm.weights_bytes == 16 * GIB


@pytest.mark.parametrize(
    "raw",
    [None, "32,8,128", {"layers": 32}, {"layers": "many", "kv_heads": 8, "head_dim": 128}],
)
def test_an_architecture_that_does_not_read_is_no_architecture(raw: object) -> None:
    assert architecture_of(model(architecture=raw)) is None


def test_gpu_memory_fraction_is_the_replicas_share_of_its_smallest_gpu() -> None:
    assert gpu_memory_fraction(40 * GIB, [80 * GIB, 80 * GIB]) == 0.25
    assert gpu_memory_fraction(40 * GIB, [80 * GIB, 40 * GIB]) == 0.5
    # Rounded down, so the engine never takes more than the scheduler gave it.
    assert gpu_memory_fraction(2 * GIB, [3 * GIB]) == 0.666


def test_gpu_memory_fraction_stays_within_its_bounds() -> None:
    assert gpu_memory_fraction(1, [80 * GIB]) == MIN_FRACTION
    assert gpu_memory_fraction(80 * GIB, [80 * GIB]) == MAX_FRACTION
    assert gpu_memory_fraction(GIB, []) == MAX_FRACTION
    assert gpu_memory_fraction(GIB, [0]) == MAX_FRACTION
