"""The node's model store: fetches models by source, resumes broken downloads, verifies them,
and keeps the downloaded ones within a byte budget by evicting the least recently used.

A model is one file (a GGUF: a local path, an http(s) URL, or `hf://OWNER/REPO/PATH[@REV]`),
or a whole Hugging Face repository (`hf://OWNER/REPO[@REV]`: config, tokenizer and safetensors
shards, as vLLM and SGLang load them), fetched with `huggingface_hub.snapshot_download`: its
cache layout, its resume of interrupted files, its handling of the hub's redirects and storage
backends. Each repository gets a hub cache of its own, so that evicting it frees exactly its
bytes; only the files the model's format needs are fetched.

Layout under `root`: `partial/<key>.part` (file downloads in progress), `partial/<key>.hub/` (a
repository's hub cache while it downloads), `models/<key>/<filename>` (complete, verified
files), `models/<key>/models--OWNER--REPO/snapshots/<commit>/` (complete repositories) and
`index.json` (what is held and when it was last used), where `<key>` is the SHA-256 of the
source string.

The store cannot know which files a running engine has open: the supervisor must call `touch`
for every model it runs, so that eviction takes the models nobody used for longest.
"""

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO, TypeVar
from urllib.parse import quote, unquote, urlsplit

import aiohttp
import structlog

from hashgrid.common.backoff import Backoff
from hashgrid.common.paths import write_atomic
from hashgrid.contracts import sources

T = TypeVar("T")

log = structlog.get_logger("hashgrid.agent.store")

Progress = Callable[[int, int | None], None]

CHUNK_BYTES = 1 << 20
INDEX_VERSION = 1
# How often a repository's download reports its progress (bytes on disk so far).
REPOSITORY_PROGRESS_S = 1.0
# A peer that stops sending for this long is treated as gone; the download then resumes.
TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
RETRYABLE_STATUSES = frozenset({408, 425, 429})


class StoreError(Exception):
    """A model could not be made available on this node."""


class ModelNotFound(StoreError):
    """A local source that does not exist."""


class ModelTooLarge(StoreError):
    """A model bigger than the whole store."""


class DownloadFailed(StoreError):
    """The server refused the file, or kept failing after every retry."""


class VerificationError(StoreError):
    """A file whose size or SHA-256 is not the one expected."""

    def __init__(self, source: str, what: str, expected: object, got: object) -> None:
        super().__init__(f"{source}: {what} mismatch: expected {expected}, got {got}")
        self.what = what
        self.expected = expected
        self.got = got


class _Transient(Exception):
    """A failure worth another attempt: the network, or the server for a moment."""


@dataclass(frozen=True)
class CachedModel:
    source: str
    path: Path  # the file, or a repository's snapshot folder
    size_bytes: int
    sha256: str  # of the file; of a repository, the commit it was fetched at
    last_used: float


@dataclass(frozen=True)
class _Remote:
    url: str
    filename: str
    headers: dict[str, str]


@dataclass(frozen=True)
class _Entry:
    source: str
    filename: str  # under models/<key>/: the file, or a repository's snapshot folder
    size_bytes: int
    sha256: str  # of the file; of a repository, its commit
    last_used: float
    repository: bool = False


class ModelStore:
    """Model files by source, downloaded into `root` and kept within `max_bytes`."""

    def __init__(
        self,
        root: Path,
        max_bytes: int,
        *,
        hf_endpoint: str = "https://huggingface.co",
        attempts: int = 5,
        backoff_base_s: float = 0.5,
    ) -> None:
        self._root = root
        self._models = root / "models"
        self._partial = root / "partial"
        self._index_path = root / "index.json"
        self._max_bytes = max_bytes
        self._hf_endpoint = hf_endpoint.rstrip("/")
        self._attempts = attempts
        self._backoff_base_s = backoff_base_s
        self._locks: dict[str, asyncio.Lock] = {}
        self._last_stamp = 0.0
        self._models.mkdir(parents=True, exist_ok=True)
        self._partial.mkdir(parents=True, exist_ok=True)
        self._index = self._load_index()
        self._reconcile()

    async def fetch(
        self,
        source: str,
        *,
        size_bytes: int | None = None,
        sha256: str | None = None,
        progress: Progress | None = None,
        files: tuple[str, ...] = (),
    ) -> Path:
        """The local path of `source`, downloading it unless the store already holds it: a file,
        or a repository's folder holding the files that match `files` (glob patterns; none: all).
        A repository's `size_bytes` is not checked (a catalog gives its weights' size, for
        placement) and it has no `sha256` (its commit pins it)."""
        if source.startswith(sources.HF_PREFIX) and sources.parse_hf(source).path is None:
            return await self._fetch_repository(source, files, progress)
        remote = self._remote(source)
        if remote is None:
            return await asyncio.to_thread(_check_local, source, size_bytes, sha256)
        if size_bytes is not None and size_bytes > self._max_bytes:
            raise self._too_large(source, size_bytes)
        key = _key(source)
        # One download per source: a second caller waits, then finds the file held.
        async with self._locks.setdefault(key, asyncio.Lock()):
            held = self._held(key, size_bytes, sha256)
            if held is not None:
                return held
            part = await self._download(source, remote, key, size_bytes, progress)
            _verify(source, part, size_bytes, sha256)
            return self._commit(key, source, remote.filename, part)

    def holdings(self) -> list[CachedModel]:
        """What the store holds, most recently used first."""
        models = [
            CachedModel(e.source, self._path(k, e), e.size_bytes, e.sha256, e.last_used)
            for k, e in self._index.items()
        ]
        return sorted(models, key=lambda m: m.last_used, reverse=True)

    def touch(self, source: str) -> bool:
        """Record a use of `source` now, so eviction spares it; False when it is not held."""
        key = _key(source)
        entry = self._index.get(key)
        if entry is None:
            return False
        self._index[key] = replace(entry, last_used=self._now())
        self._save_index()
        return True

    # Sources

    def _remote(self, source: str) -> _Remote | None:
        """Where to download `source` from; None for a local path."""
        if source.startswith(sources.HF_PREFIX):
            return self._hf_remote(source)
        scheme = urlsplit(source).scheme if "://" in source else ""
        if scheme in ("http", "https"):
            parts = urlsplit(source)
            if not parts.hostname:
                raise ValueError(f"model source {source!r} has no host")
            return _Remote(source, _filename(unquote(parts.path)), {})
        if scheme or not source:
            raise ValueError(
                f"unsupported model source {source!r}: expected a local path, an http(s):// URL,"
                " hf://OWNER/REPO/PATH[@REVISION] or hf://OWNER/REPO[@REVISION]"
            )
        return None

    def _hf_remote(self, source: str) -> _Remote:
        hf = sources.parse_hf(source)
        assert hf.path is not None  # a repository is fetched by `_fetch_repository`
        url = (
            f"{self._hf_endpoint}/{quote(hf.owner)}/{quote(hf.repo)}/resolve/"
            f"{quote(hf.revision, safe='')}/{quote(hf.path)}"
        )
        token = os.environ.get("HF_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return _Remote(url, _filename(hf.path), headers)

    # Repositories

    async def _fetch_repository(
        self, source: str, files: tuple[str, ...], progress: Progress | None
    ) -> Path:
        hf = sources.parse_hf(source)
        key = _key(source)
        async with self._locks.setdefault(key, asyncio.Lock()):
            held = self._held(key, None, None)
            if held is not None:
                return held
            cache = self._partial / f"{key}.hub"
            patterns = list(files) or None
            listing = await self._with_retries(
                source,
                lambda: asyncio.to_thread(
                    _snapshot, hf, cache, patterns, self._hf_endpoint, dry_run=True
                ),
            )
            total = sum(size for size in listing.sizes if size is not None)
            if total > self._max_bytes:
                raise self._too_large(source, total)
            # Room now, so that the download does not fill the disk past the budget.
            self._evict(room_for=total)
            log.info("downloading repository", source=source, files=len(listing.sizes), bytes=total)
            watch = asyncio.create_task(_report_progress(cache, total, progress))
            try:
                folder = await self._with_retries(
                    source,
                    lambda: asyncio.to_thread(
                        _snapshot, hf, cache, patterns, self._hf_endpoint, dry_run=False
                    ),
                )
            finally:
                watch.cancel()
            await asyncio.to_thread(_verify_blobs, source, cache)
            if progress is not None:
                progress(total, total)
            return self._commit_repository(key, source, cache, folder.path, listing.commit)

    async def _with_retries(self, source: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt`, again after a network failure or a hub error worth retrying, up to the
        store's attempts."""
        backoff = Backoff(base=self._backoff_base_s)
        while True:
            try:
                return await attempt()
            except _Transient as exc:
                if backoff.attempts + 1 >= self._attempts:
                    raise DownloadFailed(
                        f"{source}: gave up after {self._attempts} attempts: {exc}"
                    ) from exc
                delay = backoff.next_delay()
                log.warning("download interrupted", source=source, error=str(exc), retry_s=delay)
                await asyncio.sleep(delay)

    def _commit_repository(
        self, key: str, source: str, cache: Path, folder: Path, commit: str
    ) -> Path:
        """Move a complete repository's hub cache under `models/`; no await, no interleaving."""
        size = _tree_bytes(cache)
        if size > self._max_bytes:
            shutil.rmtree(cache, ignore_errors=True)
            raise self._too_large(source, size)
        self._evict(room_for=size)
        snapshot = folder.relative_to(cache).as_posix()
        entry = _Entry(source, snapshot, size, commit, self._now(), repository=True)
        dest = self._models / key
        self._index[key] = entry
        self._save_index()
        try:
            shutil.rmtree(dest, ignore_errors=True)
            os.replace(cache, dest)
        except OSError:
            self._remove(key)
            self._save_index()
            raise
        path = self._path(key, entry)
        log.info("repository stored", source=source, path=str(path), size_bytes=size)
        return path

    # Downloads

    async def _download(
        self,
        source: str,
        remote: _Remote,
        key: str,
        size_bytes: int | None,
        progress: Progress | None,
    ) -> "_Part":
        """Fill `partial/<key>.part` with the whole file, resuming what is already there."""
        part = _Part(self._partial / f"{key}.part")
        await asyncio.to_thread(part.load)
        log.info("downloading model", source=source, url=remote.url, resume_from=part.size)
        async with aiohttp.ClientSession(timeout=TIMEOUT, auto_decompress=False) as session:
            await self._with_retries(
                source, lambda: self._attempt(session, source, remote, part, size_bytes, progress)
            )
        return part

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        source: str,
        remote: _Remote,
        part: "_Part",
        size_bytes: int | None,
        progress: Progress | None,
    ) -> None:
        """One request: append the rest of the file to `part`, or raise `_Transient`."""
        # Compressed bodies would make byte offsets meaningless for Range.
        headers = {**remote.headers, "Accept-Encoding": "identity"}
        if part.size:
            headers["Range"] = f"bytes={part.size}-"
        try:
            async with session.get(remote.url, headers=headers) as resp:
                if resp.status == 416 and part.size:
                    _settle_unsatisfiable(resp, part, size_bytes)
                    if progress is not None:
                        progress(part.size, part.size)
                    return
                total = _start(source, resp, part)
                self._check_total(source, part, total, size_bytes)
                with part.path.open("ab") as f:
                    async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
                        part.append(f, chunk)
                        if size_bytes is not None and part.size > size_bytes:
                            got = f"at least {part.size}"
                            part.delete()
                            raise VerificationError(source, "size", size_bytes, got)
                        if progress is not None:
                            progress(part.size, total)
                if total is not None and part.size < total:
                    raise _Transient(f"body ended at {part.size} of {total} bytes")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Transient(str(exc) or type(exc).__name__) from exc

    def _check_total(self, source: str, part: "_Part", total: int | None, size: int | None) -> None:
        """Fail before downloading a file the server says is the wrong size, or too big."""
        if total is None:
            return
        if size is not None and total != size:
            part.delete()
            raise VerificationError(source, "size", size, total)
        if total > self._max_bytes:
            part.delete()
            raise self._too_large(source, total)

    # Cache

    def _held(self, key: str, size_bytes: int | None, sha256: str | None) -> Path | None:
        """The held file for `key` when it matches what is expected; a stale one is dropped."""
        entry = self._index.get(key)
        if entry is None:
            return None
        path = self._path(key, entry)
        matches = (size_bytes is None or size_bytes == entry.size_bytes) and (
            sha256 is None or sha256.lower() == entry.sha256
        )
        if not matches or not _intact(entry, path):
            log.info("dropping stale model", source=entry.source)
            self._remove(key)
            self._save_index()
            return None
        self._index[key] = replace(entry, last_used=self._now())
        self._save_index()
        return path

    def _commit(self, key: str, source: str, filename: str, part: "_Part") -> Path:
        """Make room, then move the verified part into `models/`; no await, so no interleaving."""
        if part.size > self._max_bytes:
            part.delete()
            raise self._too_large(source, part.size)
        self._evict(room_for=part.size)
        entry = _Entry(source, filename, part.size, part.hexdigest(), self._now())
        dest = self._path(key, entry)
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Index first: a crash before the rename leaves an entry that loading drops and a part
        # that resumes; the other order could leave an unindexed file that loading must delete.
        self._index[key] = entry
        self._save_index()
        try:
            os.replace(part.path, dest)
        except OSError:
            self._remove(key)
            self._save_index()
            raise
        log.info("model stored", source=source, path=str(dest), size_bytes=part.size)
        return dest

    def _evict(self, room_for: int) -> None:
        """Remove least recently used models until `room_for` more bytes fit."""
        used = sum(e.size_bytes for e in self._index.values())
        for key, entry in sorted(self._index.items(), key=lambda kv: kv[1].last_used):
            if used + room_for <= self._max_bytes:
                break
            log.info("evicting model", source=entry.source, size_bytes=entry.size_bytes)
            self._remove(key)
            used -= entry.size_bytes
        self._save_index()

    def _too_large(self, source: str, size: int) -> ModelTooLarge:
        return ModelTooLarge(f"{source}: {size} bytes exceed the store's {self._max_bytes}")

    def _remove(self, key: str) -> None:
        self._index.pop(key, None)
        shutil.rmtree(self._models / key, ignore_errors=True)

    def _path(self, key: str, entry: _Entry) -> Path:
        return self._models / key / entry.filename

    def _now(self) -> float:
        # Strictly increasing, so two uses within one clock tick still order the LRU.
        self._last_stamp = max(time.time(), self._last_stamp + 1e-6)
        return self._last_stamp

    # Index

    def _load_index(self) -> dict[str, _Entry]:
        try:
            raw = json.loads(self._index_path.read_text())
            return {k: _Entry(**v) for k, v in raw["models"].items()}
        except FileNotFoundError:
            return {}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("model index unreadable; starting empty", error=str(exc))
            return {}

    def _reconcile(self) -> None:
        """Make the index and `models/` agree after a crash or a hand edit."""
        for key, entry in list(self._index.items()):
            if not _intact(entry, self._path(key, entry)):
                self._remove(key)
        for child in self._models.iterdir():
            if child.name not in self._index:
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        for entry in self._index.values():
            self._last_stamp = max(self._last_stamp, entry.last_used)
        self._save_index()

    def _save_index(self) -> None:
        data = {
            "version": INDEX_VERSION,
            "models": {k: asdict(e) for k, e in self._index.items()},
        }
        write_atomic(self._index_path, json.dumps(data, indent=1, sort_keys=True))


class _Part:
    """A `.part` file and the running SHA-256 of its bytes, kept in step."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._hash = hashlib.sha256()

    def load(self) -> None:
        """Hash what an earlier attempt or process left, so a resume verifies the whole file."""
        with contextlib.suppress(FileNotFoundError), self.path.open("rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                self._hash.update(chunk)
                self.size += len(chunk)

    def append(self, f: IO[bytes], chunk: bytes) -> None:
        f.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)
        self.size = 0
        self._hash = hashlib.sha256()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _start(source: str, resp: aiohttp.ClientResponse, part: _Part) -> int | None:
    """Check the response fits `part`, restarting it on a full body; the file's total size."""
    if resp.status == 206:
        start, total = _content_range(resp.headers.get("Content-Range", ""))
        if start != part.size:
            part.delete()
            raise _Transient(f"server resumed at byte {start}, not {part.size}")
        return total
    if resp.status == 200:
        if part.size:
            log.info("server ignored Range; starting over", source=source)
            part.delete()
        return resp.content_length
    if resp.status in RETRYABLE_STATUSES or resp.status >= 500:
        raise _Transient(f"HTTP {resp.status}")
    raise DownloadFailed(f"{source}: HTTP {resp.status} {resp.reason or ''}".rstrip())


def _settle_unsatisfiable(resp: aiohttp.ClientResponse, part: _Part, size: int | None) -> None:
    """After a 416: keep a part that is the whole file, else start over."""
    _, total = _content_range(resp.headers.get("Content-Range", ""))
    known = total if total is not None else size
    if known is not None and part.size == known:
        return
    part.delete()
    raise _Transient(f"part of {part.size} bytes does not match a file of {known} bytes")


def _content_range(value: str) -> tuple[int | None, int | None]:
    """(first byte, total) from `bytes 10-99/100` or `bytes */100`; None where absent."""
    unit, _, rest = value.strip().partition(" ")
    if unit != "bytes" or "/" not in rest:
        return None, None
    span, _, total = rest.partition("/")
    first = span.partition("-")[0]
    return (
        int(first) if first.isdigit() else None,
        int(total) if total.isdigit() else None,
    )


def _verify(source: str, part: _Part, size_bytes: int | None, sha256: str | None) -> None:
    """Delete the part and raise when it is not the file expected."""
    if size_bytes is not None and part.size != size_bytes:
        got = part.size
        part.delete()
        raise VerificationError(source, "size", size_bytes, got)
    if sha256 is not None and part.hexdigest() != sha256.lower():
        got_sha = part.hexdigest()
        part.delete()
        raise VerificationError(source, "sha256", sha256.lower(), got_sha)


def _intact(entry: _Entry, path: Path) -> bool:
    """Whether what the index says is held is there: the file at its size, or the folder."""
    if entry.repository:
        return path.is_dir()
    return path.is_file() and path.stat().st_size == entry.size_bytes


@dataclass(frozen=True)
class _Snapshot:
    commit: str
    path: Path  # the snapshot folder (a dry run: where it will be)
    sizes: list[int | None]  # of the files a dry run would fetch


def _snapshot(
    hf: sources.HfSource,
    cache: Path,
    patterns: list[str] | None,
    endpoint: str,
    *,
    dry_run: bool,
) -> _Snapshot:
    """`snapshot_download` of `hf` into the hub cache `cache` (blocking): what it would fetch,
    or the folder it fetched. Raises `_Transient` for a failure worth another attempt."""
    # Imported on first use: only nodes that serve repositories need it.
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import disable_progress_bars  # type: ignore[attr-defined]

    disable_progress_bars()  # progress is the store's, through `progress`
    token = os.environ.get("HF_TOKEN") or None
    try:
        if dry_run:
            infos = snapshot_download(
                hf.repo_id,
                revision=hf.revision,
                cache_dir=cache,
                allow_patterns=patterns,
                endpoint=endpoint,
                token=token,
                dry_run=True,
            )
            commit = infos[0].commit_hash if infos else hf.revision
            return _Snapshot(commit, cache, [i.file_size for i in infos])
        folder = Path(
            snapshot_download(
                hf.repo_id,
                revision=hf.revision,
                cache_dir=cache,
                allow_patterns=patterns,
                endpoint=endpoint,
                token=token,
            )
        )
        return _Snapshot(folder.name, folder, [])
    except Exception as exc:  # the network, the hub (its HTTP client has its own exceptions)
        status = _hub_status(exc, HfHubHTTPError)
        # Not found, gated, unauthorized: no retry mends those; the hub for a moment might.
        if status is not None and status < 500 and status not in RETRYABLE_STATUSES:
            raise DownloadFailed(f"hf://{hf.repo_id}@{hf.revision}: {exc}") from exc
        raise _Transient(str(exc) or type(exc).__name__) from exc


def _hub_status(exc: BaseException, http_error: type[Exception]) -> int | None:
    """The HTTP status of the hub's answer behind `exc` (a dry run wraps it), if any."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None) if isinstance(seen, http_error) else None
        if response is not None:
            return int(response.status_code)
        seen = seen.__cause__ or seen.__context__
    return None


async def _report_progress(cache: Path, total: int, progress: Progress | None) -> None:
    """Report the bytes a repository's download has on disk, now and then, until cancelled."""
    if progress is None:
        return
    while True:
        await asyncio.sleep(REPOSITORY_PROGRESS_S)
        progress(min(await asyncio.to_thread(_tree_bytes, cache), total), total)


def _verify_blobs(source: str, cache: Path) -> None:
    """Check every file of a hub cache against the name the hub gave it (blocking): in its
    layout a blob is named by its ETag, which is the SHA-256 of an LFS file's bytes and the git
    blob id (SHA-1 of `blob <size>\\0` and the bytes) of any other. huggingface_hub checks
    sizes only. A blob that does not match is deleted, so a later fetch downloads it again."""
    for blob in cache.glob("*/blobs/*"):
        name = blob.name
        if len(name) == 64 and all(c in "0123456789abcdef" for c in name):
            got = _sha256_file(blob)
        elif len(name) == 40 and all(c in "0123456789abcdef" for c in name):
            got = _git_blob_id(blob)
        else:
            continue  # a name that is no digest (an .incomplete file, another hub's ETag)
        if got != name:
            blob.unlink(missing_ok=True)
            raise VerificationError(f"{source}: {blob.name}", "digest", name, got)


def _git_blob_id(path: Path) -> str:
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()


def _tree_bytes(folder: Path) -> int:
    """Bytes of the regular files under `folder` (a hub cache's links are not counted twice)."""
    total = 0
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            if not path.is_symlink() and path.is_file():
                total += path.stat().st_size
    return total


def _check_local(source: str, size_bytes: int | None, sha256: str | None) -> Path:
    """A local source, unchanged, once it exists and matches what is expected (blocking)."""
    path = Path(source)
    if not path.is_file():
        raise ModelNotFound(f"model file not found on this node: {source}")
    if size_bytes is not None and (got := path.stat().st_size) != size_bytes:
        raise VerificationError(source, "size", size_bytes, got)
    if sha256 is not None and (got_sha := _sha256_file(path)) != sha256.lower():
        raise VerificationError(source, "sha256", sha256.lower(), got_sha)
    return path


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()


def _key(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def _filename(path: str) -> str:
    """The last segment of a URL path, or `model` where that is no usable file name."""
    name = path.rsplit("/", 1)[-1]
    return name if name not in ("", ".", "..") and "\x00" not in name else "model"
