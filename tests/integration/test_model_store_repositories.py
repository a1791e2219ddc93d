"""The model store fetching whole Hugging Face repositories (safetensors for vLLM and SGLang)
through `huggingface_hub.snapshot_download`, against a hub on loopback (`support.fake_hub`):
only the format's files, resume, the store's budget and eviction, and the cache."""

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hashgrid.agent.store import DownloadFailed, ModelStore, ModelTooLarge, VerificationError
from hashgrid.contracts.engines import FORMATS
from hashgrid.models.hub import describe_repository

from support.fake_hub import FakeHub

pytestmark = pytest.mark.timeout(120)

SAFETENSORS = FORMATS["safetensors"].files
MIB = 1 << 20
# Larger than huggingface_hub's download chunk (10 MiB), so a dropped connection leaves bytes
# on disk for the next request to resume from.
BIG = 16 * MIB

SHARD_1 = os.urandom(300_000)
SHARD_2 = os.urandom(200_000)
TINY = {
    "config.json": b'{"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 2}',
    "model-00001-of-00002.safetensors": SHARD_1,
    "model-00002-of-00002.safetensors": SHARD_2,
    "model.safetensors.index.json": b'{"weight_map": {}}',
    "tokenizer.json": b'{"model": {}}',
    "pytorch_model.bin": b"the same weights again, as pickles" * 1000,
    "original/consolidated.00.pth": b"another checkpoint layout" * 1000,
}
TINY_BYTES = sum(len(v) for k, v in TINY.items() if not k.endswith((".bin", ".pth")))


@pytest.fixture
async def hub() -> AsyncIterator[FakeHub]:
    server = FakeHub({"org/tiny": dict(TINY), "org/big": {"model.safetensors": os.urandom(BIG)}})
    await server.start()
    yield server
    await server.stop()


def store_at(root: Path, hub: FakeHub, max_bytes: int = 64 * MIB) -> ModelStore:
    return ModelStore(root, max_bytes, hf_endpoint=hub.url, attempts=3, backoff_base_s=0.01)


async def test_a_repository_is_fetched_with_only_the_files_its_format_needs(
    tmp_path: Path, hub: FakeHub
) -> None:
    store = store_at(tmp_path, hub)
    seen: list[tuple[int, int | None]] = []
    folder = await store.fetch(
        "hf://org/tiny", files=SAFETENSORS, progress=lambda done, total: seen.append((done, total))
    )
    assert folder.is_dir()
    assert folder.name == hub.commit  # the snapshot of the commit `main` pointed at
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
    ]
    assert (folder / "model-00001-of-00002.safetensors").read_bytes() == SHARD_1
    assert (folder / "model-00002-of-00002.safetensors").read_bytes() == SHARD_2
    assert not hub.downloads("pytorch_model.bin")
    assert seen[-1] == (TINY_BYTES, TINY_BYTES)
    [held] = store.holdings()
    assert (held.source, held.path, held.sha256) == ("hf://org/tiny", folder, hub.commit)
    assert held.size_bytes >= TINY_BYTES


async def test_a_held_repository_is_served_from_the_store_without_asking_the_hub(
    tmp_path: Path, hub: FakeHub
) -> None:
    first = await store_at(tmp_path, hub).fetch("hf://org/tiny", files=SAFETENSORS)
    asked = len(hub.requests)
    again = await store_at(tmp_path, hub).fetch("hf://org/tiny", files=SAFETENSORS)  # restarted
    assert again == first
    assert len(hub.requests) == asked


async def test_a_repository_pinned_to_a_commit_is_fetched_at_that_commit(
    tmp_path: Path, hub: FakeHub
) -> None:
    folder = await store_at(tmp_path, hub).fetch(f"hf://org/tiny@{hub.commit}", files=SAFETENSORS)
    assert folder.name == hub.commit
    assert not [r for r in hub.requests if "/revision/" in r.path]  # nothing to resolve


async def test_a_dropped_connection_resumes_where_it_stopped(tmp_path: Path, hub: FakeHub) -> None:
    hub.drop_after["model.safetensors"] = 12 * MIB
    folder = await store_at(tmp_path, hub).fetch("hf://org/big", files=SAFETENSORS)
    assert (folder / "model.safetensors").read_bytes() == hub.repos["org/big"]["model.safetensors"]
    first, second = hub.downloads("model.safetensors")
    assert first.range is None
    assert second.range is not None
    assert second.range.startswith("bytes=")
    assert int(second.range.removeprefix("bytes=").split("-")[0]) > 0


@pytest.mark.parametrize("bad", ["model-00002-of-00002.safetensors", "tokenizer.json"])
async def test_a_file_that_is_not_what_the_hub_named_it_is_refused_and_fetched_again(
    tmp_path: Path, hub: FakeHub, bad: str
) -> None:
    """LFS files are checked against their SHA-256, the others against their git blob id."""
    hub.corrupt.add(bad)
    store = store_at(tmp_path, hub)
    with pytest.raises(VerificationError, match="digest mismatch"):
        await store.fetch("hf://org/tiny", files=SAFETENSORS)
    assert store.holdings() == []
    hub.corrupt.clear()
    folder = await store.fetch("hf://org/tiny", files=SAFETENSORS)
    assert (folder / bad).read_bytes() == TINY[bad]
    assert len(hub.downloads(bad)) == 2
    assert len(hub.downloads("model-00001-of-00002.safetensors")) == 1  # kept, not fetched again


async def test_a_repository_larger_than_the_store_is_refused_before_downloading(
    tmp_path: Path, hub: FakeHub
) -> None:
    store = store_at(tmp_path, hub, max_bytes=BIG - 1)
    with pytest.raises(ModelTooLarge, match="exceed"):
        await store.fetch("hf://org/big", files=SAFETENSORS)
    assert not hub.downloads("model.safetensors")
    assert store.holdings() == []


async def test_a_repository_evicts_the_least_recently_used_models_to_fit(
    tmp_path: Path, hub: FakeHub
) -> None:
    store = store_at(tmp_path, hub, max_bytes=BIG + TINY_BYTES // 2)
    tiny = await store.fetch("hf://org/tiny", files=SAFETENSORS)
    big = await store.fetch("hf://org/big", files=SAFETENSORS)
    assert [m.source for m in store.holdings()] == ["hf://org/big"]
    assert not tiny.exists()
    assert big.is_dir()
    # and the index agrees after a restart
    assert [m.source for m in store_at(tmp_path, hub).holdings()] == ["hf://org/big"]


async def test_a_repository_the_hub_does_not_have_fails_at_once(
    tmp_path: Path, hub: FakeHub
) -> None:
    with pytest.raises(DownloadFailed, match="org/missing"):
        await store_at(tmp_path, hub).fetch("hf://org/missing", files=SAFETENSORS)
    assert len([r for r in hub.requests if "org/missing" in r.path]) == 1  # not retried


async def test_a_repository_is_described_from_the_hubs_listing_without_its_weights(
    hub: FakeHub,
) -> None:
    """What `hashgrid models add --source hf://...` registers: the bytes of the format's files and
    the architecture in config.json, with no weight file fetched."""
    hub.repos["org/tiny"]["config.json"] = json.dumps(
        {"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 64}
    ).encode()
    size = sum(len(v) for k, v in hub.repos["org/tiny"].items() if not k.endswith((".bin", ".pth")))
    facts = await asyncio.to_thread(describe_repository, "hf://org/tiny", SAFETENSORS, hub.url)
    assert facts.size_bytes == size
    assert facts.architecture == {
        "layers": 2,
        "kv_heads": 4,
        "head_dim": 16,
        "kv_bytes_per_element": 2,
    }
    assert not hub.downloads("model-00001-of-00002.safetensors")
