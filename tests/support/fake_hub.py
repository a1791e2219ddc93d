"""A Hugging Face Hub on loopback, speaking as much of the hub's HTTP API as
`huggingface_hub.snapshot_download` uses: a revision's commit
(`GET /api/models/{repo}/revision/{revision}`), the commit's file tree
(`GET /api/models/{repo}/tree/{commit}`), and each file (`HEAD`/`GET
/{repo}/resolve/{revision}/{path}`, with the X-Repo-Commit and ETag headers and byte ranges).
Large files are LFS files as on the hub: their tree entry carries their SHA-256."""

import asyncio
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web

from hashgrid.common.net import free_port

LFS_SUFFIXES = (".safetensors", ".gguf", ".bin")


@dataclass
class Request:
    method: str
    path: str
    range: str | None


@dataclass
class FakeHub:
    repos: dict[str, dict[str, bytes]]  # repo id -> path in the repository -> bytes
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    requests: list[Request] = field(default_factory=list)
    # Close the first GET of each of these files after this many bytes (a dropped connection).
    drop_after: dict[str, int] = field(default_factory=dict)
    # Serve these files with their last byte changed, under their true size and ETag (a bad
    # mirror, a disk fault on the way).
    corrupt: set[str] = field(default_factory=set)
    url: str = field(default_factory=lambda: f"http://127.0.0.1:{free_port()}")

    def __post_init__(self) -> None:
        app = web.Application()
        app.router.add_get("/api/models/{owner}/{repo}/revision/{revision}", self._revision)
        app.router.add_get("/api/models/{owner}/{repo}/tree/{revision}", self._tree)
        app.router.add_get("/api/models/{owner}/{repo}/tree/{revision}/{path:.*}", self._tree)
        app.router.add_route("*", "/{owner}/{repo}/resolve/{revision}/{path:.*}", self._resolve)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        self._dropped: set[str] = set()

    async def start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", int(self.url.rsplit(":", 1)[1])).start()

    async def stop(self) -> None:
        await self._runner.cleanup()

    def downloads(self, path: str) -> list[Request]:
        """The GETs of file `path`."""
        return [r for r in self.requests if r.method == "GET" and r.path.endswith(f"/{path}")]

    def _files(self, request: web.Request) -> dict[str, bytes]:
        self.requests.append(Request(request.method, request.path, request.headers.get("Range")))
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        revision = request.match_info["revision"]
        if repo not in self.repos:
            raise web.HTTPNotFound(
                headers={"X-Error-Code": "RepoNotFound"}, text='{"error":"Repository not found"}'
            )
        if revision not in ("main", self.commit):
            raise web.HTTPNotFound(
                headers={"X-Error-Code": "RevisionNotFound"}, text='{"error":"Invalid rev id"}'
            )
        return self.repos[repo]

    async def _revision(self, request: web.Request) -> web.Response:
        files = self._files(request)
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        return web.json_response(
            {
                "id": repo,
                "modelId": repo,
                "sha": self.commit,
                "private": False,
                "siblings": [{"rfilename": path} for path in files],
            }
        )

    async def _tree(self, request: web.Request) -> web.Response:
        files = self._files(request)
        entries = []
        for path, data in files.items():
            entry: dict[str, object] = {
                "type": "file",
                "oid": _git_oid(data),
                "size": len(data),
                "path": path,
            }
            if path.endswith(LFS_SUFFIXES):
                sha = hashlib.sha256(data).hexdigest()
                entry["lfs"] = {"oid": sha, "size": len(data), "pointerSize": 134}
            entries.append(entry)
        return web.json_response(entries)

    async def _resolve(self, request: web.Request) -> web.StreamResponse:
        files = self._files(request)
        path = request.match_info["path"]
        if path not in files:
            raise web.HTTPNotFound(
                headers={"X-Error-Code": "EntryNotFound"}, text='{"error":"Entry not found"}'
            )
        data = files[path]
        etag = hashlib.sha256(data).hexdigest() if path.endswith(LFS_SUFFIXES) else _git_oid(data)
        headers = {"X-Repo-Commit": self.commit, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(data))
            return web.Response(status=200, headers=headers)
        start = _range_start(request.headers.get("Range"))
        if path in self.corrupt:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        body = data[start or 0 :]
        resp = web.StreamResponse(status=200 if start is None else 206, headers=headers)
        resp.content_length = len(body)
        if start is not None:
            resp.headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        await resp.prepare(request)
        cut = self.drop_after.get(path)
        if cut is not None and path not in self._dropped:
            self._dropped.add(path)
            await resp.write(body[:cut])
            await asyncio.sleep(0.05)
            assert request.transport is not None
            request.transport.close()
            return resp
        await resp.write(body)
        await resp.write_eof()
        return resp


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _range_start(value: str | None) -> int | None:
    if value is None:
        return None
    return int(value.removeprefix("bytes=").split("-")[0])


@contextmanager
def hub_in_thread(repos: dict[str, dict[str, bytes]]) -> Iterator[FakeHub]:
    """A `FakeHub` serving from a thread of its own, for tests that are not async (a CLI's)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    hub = FakeHub(repos)
    asyncio.run_coroutine_threadsafe(hub.start(), loop).result(10)
    try:
        yield hub
    finally:
        asyncio.run_coroutine_threadsafe(hub.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
