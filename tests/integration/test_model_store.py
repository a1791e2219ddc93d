"""The model store against a real HTTP server on loopback: resume, verification, the cache and
its eviction, Hugging Face sources, cancellation and shared downloads."""

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from multidict import CIMultiDict

from hashgrid.agent.store import (
    DownloadFailed,
    ModelNotFound,
    ModelStore,
    ModelTooLarge,
    VerificationError,
)
from hashgrid.common.net import free_port

pytestmark = pytest.mark.timeout(60)

TRICKLE_BYTES = 4096


@dataclass(frozen=True)
class Seen:
    path: str
    headers: CIMultiDict[str]


class FileServer:
    """Serves one body at every path, misbehaving in the ways a test switches on."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.requests: list[Seen] = []
        self.received = asyncio.Event()
        self.honour_range = True
        self.drop_after: int | None = None  # close the first response after this many bytes
        self.trickle = False  # send small pieces with pauses, so a test can act mid-download
        self.status: int | None = None  # answer every request with this status instead
        self.gate: asyncio.Event | None = None  # hold responses until set
        self.url = f"http://127.0.0.1:{free_port()}"
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1)

    async def start(self) -> None:
        await self._runner.setup()
        port = int(self.url.rsplit(":", 1)[1])
        await web.TCPSite(self._runner, "127.0.0.1", port).start()

    async def stop(self) -> None:
        await self._runner.cleanup()

    def ranges(self) -> list[str | None]:
        return [seen.headers.get("Range") for seen in self.requests]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Seen(request.path, request.headers.copy()))
        self.received.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.status is not None:
            return web.Response(status=self.status)
        size = len(self.body)
        start = _range_start(request.headers.get("Range")) if self.honour_range else None
        if start is not None and start >= size:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        data = self.body[start or 0 :]
        resp = web.StreamResponse(status=200 if start is None else 206)
        resp.content_length = len(data)
        if start is not None:
            resp.headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
        await resp.prepare(request)
        try:
            if self.drop_after is not None and len(self.requests) == 1:
                await resp.write(data[: self.drop_after])
                assert request.transport is not None
                request.transport.close()
                return resp
            step = TRICKLE_BYTES if self.trickle else len(data)
            for i in range(0, len(data), step):
                await resp.write(data[i : i + step])
                if self.trickle:
                    await asyncio.sleep(0.01)
            await resp.write_eof()
        except ConnectionResetError:
            pass  # the client went away, as some tests intend
        return resp


def _range_start(value: str | None) -> int | None:
    if value is None:
        return None
    return int(value.removeprefix("bytes=").split("-")[0])


@pytest.fixture(scope="session")
def body(tiny_model: Path) -> bytes:
    return tiny_model.read_bytes()


@pytest.fixture
async def server(body: bytes) -> AsyncIterator[FileServer]:
    srv = FileServer(body)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(root: Path) -> ModelStore:
    return ModelStore(root, 10 * 1024 * 1024, backoff_base_s=0.01)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def part_of(root: Path, source: str) -> Path:
    return root / "partial" / f"{sha(source.encode())}.part"


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "models").rglob("*") if p.is_file())


async def test_download_lands_under_models_verified_with_progress(
    store: ModelStore, server: FileServer, root: Path, body: bytes
) -> None:
    """A URL is streamed, verified and moved to models/<sha256(source)>/<filename>."""
    source = f"{server.url}/files/tiny.gguf"
    seen: list[tuple[int, int | None]] = []
    path = await store.fetch(
        source, size_bytes=len(body), sha256=sha(body), progress=lambda d, t: seen.append((d, t))
    )
    assert path == root / "models" / sha(source.encode()) / "tiny.gguf"
    assert path.read_bytes() == body
    assert seen[-1] == (len(body), len(body))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert not part_of(root, source).exists()
    [held] = store.holdings()
    assert (held.source, held.path, held.size_bytes, held.sha256) == (
        source,
        path,
        len(body),
        sha(body),
    )


async def test_dropped_connection_resumes_with_range(
    store: ModelStore, server: FileServer, body: bytes
) -> None:
    """A body cut short is retried with Range from where it stopped; the result is identical."""
    server.drop_after = 100_000
    path = await store.fetch(f"{server.url}/tiny.gguf", sha256=sha(body))
    assert path.read_bytes() == body
    assert server.ranges() == [None, "bytes=100000-"]


async def test_server_ignoring_range_still_gives_the_right_file(
    store: ModelStore, server: FileServer, body: bytes
) -> None:
    """A 200 answer to a Range request starts the file over instead of appending to it."""
    server.drop_after = 100_000
    server.honour_range = False
    path = await store.fetch(f"{server.url}/tiny.gguf", size_bytes=len(body), sha256=sha(body))
    assert path.read_bytes() == body
    assert server.ranges() == [None, "bytes=100000-"]


async def test_complete_part_left_by_a_crash_is_verified_after_416(
    store: ModelStore, server: FileServer, root: Path, body: bytes
) -> None:
    """A part already holding the whole file gets 416 for its Range, and is verified and kept."""
    source = f"{server.url}/tiny.gguf"
    part_of(root, source).write_bytes(body)
    path = await store.fetch(source, sha256=sha(body))
    assert path.read_bytes() == body
    assert server.ranges() == [f"bytes={len(body)}-"]


async def test_corrupt_body_is_a_checksum_error_and_stores_nothing(
    store: ModelStore, server: FileServer, root: Path, body: bytes
) -> None:
    """A body whose SHA-256 differs raises with both digests, deletes the part, stores nothing."""
    server.body = body[:1000] + bytes([body[1000] ^ 0xFF]) + body[1001:]
    source = f"{server.url}/tiny.gguf"
    with pytest.raises(VerificationError) as caught:
        await store.fetch(source, sha256=sha(body))
    assert f"expected {sha(body)}, got {sha(server.body)}" in str(caught.value)
    assert stored_files(root) == []
    assert not part_of(root, source).exists()
    assert store.holdings() == []


async def test_wrong_size_is_refused_before_downloading(
    store: ModelStore, server: FileServer, root: Path, body: bytes
) -> None:
    """A Content-Length other than the expected size fails at once, saying both sizes."""
    with pytest.raises(VerificationError, match=f"expected {len(body) + 1}, got {len(body)}"):
        await store.fetch(f"{server.url}/tiny.gguf", size_bytes=len(body) + 1)
    assert stored_files(root) == []


async def test_hf_source_maps_to_resolve_url_with_token(
    server: FileServer, root: Path, body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hf://OWNER/REPO/PATH@REV is fetched from the endpoint's resolve URL with HF_TOKEN."""
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    store = ModelStore(root, 10 * 1024 * 1024, hf_endpoint=f"{server.url}/")
    path = await store.fetch("hf://owner/repo/tiny.gguf@rev")
    assert path.name == "tiny.gguf"
    assert path.read_bytes() == body
    [seen] = server.requests
    assert seen.path == "/owner/repo/resolve/rev/tiny.gguf"
    assert seen.headers["Authorization"] == "Bearer hf_secret"


async def test_hf_source_defaults_to_main_and_sends_no_token_without_one(
    server: FileServer, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without @REV the revision is main; without HF_TOKEN no Authorization is sent."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    store = ModelStore(root, 10 * 1024 * 1024, hf_endpoint=server.url)
    path = await store.fetch("hf://owner/repo/sub/dir/tiny.gguf")
    assert path.name == "tiny.gguf"
    [seen] = server.requests
    assert seen.path == "/owner/repo/resolve/main/sub/dir/tiny.gguf"
    assert "Authorization" not in seen.headers


async def test_cache_hit_makes_no_request_even_after_a_restart(
    store: ModelStore, server: FileServer, root: Path, body: bytes
) -> None:
    """A held source is served from disk, by this store and by a new one on the same root."""
    source = f"{server.url}/tiny.gguf"
    first = await store.fetch(source)
    assert await store.fetch(source, size_bytes=len(body), sha256=sha(body)) == first
    restarted = ModelStore(root, 10 * 1024 * 1024)
    assert await restarted.fetch(source) == first
    assert len(server.requests) == 1


async def test_lru_eviction_keeps_the_most_recently_used(
    server: FileServer, root: Path, body: bytes
) -> None:
    """With room for two models, fetching a third evicts the one least recently used."""
    store = ModelStore(root, 2 * len(body) + 10)
    a, b, c = (f"{server.url}/{name}.gguf" for name in "abc")
    await store.fetch(a)
    await store.fetch(b)
    await store.fetch(a)  # a hit makes `a` the most recent
    await store.fetch(c)
    assert [m.source for m in store.holdings()] == [c, a]
    assert sum(p.stat().st_size for p in stored_files(root)) <= 2 * len(body) + 10
    assert len(stored_files(root)) == 2
    assert store.touch(a)
    assert [m.source for m in store.holdings()] == [a, c]
    assert not store.touch(b)


async def test_model_larger_than_the_store_is_refused(
    server: FileServer, root: Path, body: bytes
) -> None:
    """A model that cannot fit is refused: without a request when its size is given."""
    store = ModelStore(root, len(body) - 1)
    with pytest.raises(ModelTooLarge):
        await store.fetch(f"{server.url}/tiny.gguf", size_bytes=len(body))
    assert server.requests == []
    with pytest.raises(ModelTooLarge):
        await store.fetch(f"{server.url}/tiny.gguf")
    assert stored_files(root) == []


async def test_local_path_is_returned_unchanged_and_checked(
    store: ModelStore, root: Path, tiny_model: Path, body: bytes
) -> None:
    """A local path comes back as given, never copied, once it exists and matches."""
    got = await store.fetch(str(tiny_model), size_bytes=len(body), sha256=sha(body))
    assert got == tiny_model
    assert stored_files(root) == []
    with pytest.raises(VerificationError, match="sha256 mismatch"):
        await store.fetch(str(tiny_model), sha256="0" * 64)
    with pytest.raises(ModelNotFound):
        await store.fetch(str(root / "missing.gguf"))


@pytest.mark.parametrize(
    "source", ["", "ftp://host/x.gguf", "s3://bucket/x.gguf", "hf://owner", "http:///x"]
)
async def test_unsupported_sources_are_value_errors(store: ModelStore, source: str) -> None:
    """Schemes other than http, https and hf, and malformed hf sources, are refused."""
    with pytest.raises(ValueError, match="source"):
        await store.fetch(source)


async def test_cancelled_fetch_leaves_a_part_that_a_later_fetch_resumes(
    store: ModelStore, server: FileServer, root: Path, body: bytes
) -> None:
    """Cancelling mid-download keeps the .part, puts nothing in models/; the next fetch resumes."""
    source = f"{server.url}/tiny.gguf"
    server.trickle = True
    started = asyncio.Event()

    def progress(done: int, total: int | None) -> None:
        if done:
            started.set()

    task = asyncio.create_task(store.fetch(source, progress=progress))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    kept = part_of(root, source).stat().st_size
    assert 0 < kept < len(body)
    assert stored_files(root) == []

    server.trickle = False
    path = await store.fetch(source, sha256=sha(body))
    assert path.read_bytes() == body
    assert server.ranges()[-1] == f"bytes={kept}-"


async def test_concurrent_fetches_of_one_source_share_one_download(
    store: ModelStore, server: FileServer, body: bytes
) -> None:
    """Two fetches of one source at once make one request and get the same file."""
    server.gate = asyncio.Event()
    source = f"{server.url}/tiny.gguf"
    first = asyncio.create_task(store.fetch(source))
    second = asyncio.create_task(store.fetch(source))
    await server.received.wait()
    server.gate.set()
    a, b = await asyncio.gather(first, second)
    assert a == b
    assert a.read_bytes() == body
    assert len(server.requests) == 1


async def test_client_errors_fail_at_once_and_server_errors_after_retries(
    root: Path, server: FileServer
) -> None:
    """A 404 is final after one request; a 503 is retried `attempts` times, then given up."""
    store = ModelStore(root, 10 * 1024 * 1024, attempts=3, backoff_base_s=0.01)
    server.status = 404
    with pytest.raises(DownloadFailed, match="404"):
        await store.fetch(f"{server.url}/tiny.gguf")
    assert len(server.requests) == 1
    server.status = 503
    with pytest.raises(DownloadFailed, match="after 3 attempts"):
        await store.fetch(f"{server.url}/tiny.gguf")
    assert len(server.requests) == 4
