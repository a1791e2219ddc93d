"""Usage records: appended first to a local spool of segment files, then sent to the control
plane in batches. The server stores each request id once, so a batch resent after a crash or a
lost answer is harmless: nothing is lost, nothing is counted twice.

The spool is a directory of append-only segments (`<n>.jsonl`, one JSON record per line) and an
`acked` file saying how far the server has acknowledged (segment and byte offset). An append is
one `os.write` to an `O_APPEND` file descriptor: a few microseconds on the event loop, and in the
kernel's page cache when it returns, so a gateway killed with SIGKILL right after loses nothing.
Power loss or a kernel crash is another matter: what was not yet written to the disk is lost,
unless `fsync_s` (settings: `usage_fsync_s`, default 1 s, like Redis's `appendfsync everysec`)
flushes the segments from a worker thread. Reading, acknowledging and deleting segments happen
in the shipper, off the event loop.

Each open starts a new segment, so that a line torn by a crash stays the last of its segment;
the reader skips an incomplete last line of any segment no longer written. A segment the server
has acknowledged to its end is deleted. The `acked` file is replaced atomically; if a crash
comes between the server's answer and that write, the batch is sent again (rare and harmless).
The spool's files are the gateway's alone: 0600, in a 0700 directory.

Streams cut by a crash. A stream's record is written when it ends, so a gateway killed
mid-stream would never bill it. While a stream is open, the proxy `track`s it with a function
giving its record so far (the content chunks that reached the client as completion tokens,
status 499). At each sync tick (`usage_fsync_s`) the spool writes those records to the
`streams` journal, replaced atomically (and deleted when no stream is open); appending a
request's final record stops its tracking. On the next open, each record left in the journal
is appended to the spool, then the journal is deleted. A cut stream is so billed for what
reached its client, at most one tick behind (a stream younger than a tick is lost). It is never
billed twice: its journal record has the request id its final record has, and comes after that
record in the spool when there was one (a stream that ended just after the tick before the
crash), so the server, which stores each request id once, keeps the final record.

What is spooled is bounded to what the server stores (`clamp_text`, `token_count`): a client's
model name or request id holding NUL or longer than its column, or a node's token count that is
negative, not an integer or beyond any context, would otherwise be a record the server cannot
store. An implausible count is the node's error: it is kept as 0 (the customer never pays
for it), the record is flagged (`usage_clamped`, stored with it, so the server and billing can
tell it from a trusted count) and a warning names the node and replica. Prompt tokens the engine
served from its prefix cache (OpenAI's `usage.prompt_tokens_details.cached_tokens`, priced at
the cached rate) are kept the same way, and never as more than the prompt's tokens.
"""

import asyncio
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import structlog

from hashgrid.common.backoff import Backoff
from hashgrid.common.paths import private_dir
from hashgrid.contracts.gateway import UsageAck

log = structlog.get_logger("hashgrid.gateway.metering")

SEGMENT_SUFFIX = ".jsonl"
ACKED = "acked"
JOURNAL = "streams"  # the records so far of the streams open at the last sync tick
READ_CHUNK = 1 << 18
# A batch's most bytes: a quarter of the control plane's default body limit (4 MiB), so that no
# batch size a gateway is given makes a body the control plane refuses on every resend.
MAX_BATCH_BYTES = 1 << 20
OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
FILE_MODE = 0o600
# More tokens than any model's context holds: a node reporting more for one request is wrong.
PLAUSIBLE_TOKENS = 10_000_000


def clamp_text(value: str, limit: int) -> str:
    """`value` as a usage record column holds it: without NUL, at most `limit` characters."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value[:limit]


def token_count(reported: object) -> tuple[int, bool]:
    """A node's token count as a record keeps it, and whether it was plausible as reported.

    Absent (None) counts as 0, as engines leave out what they did not produce; an integer in
    0..PLAUSIBLE_TOKENS is taken. Anything else is kept as 0: the customer never pays for a
    node's wrong count (and its operator earns nothing from it); the record is flagged."""
    if reported is None:
        return 0, True
    if type(reported) is int and 0 <= reported <= PLAUSIBLE_TOKENS:
        return reported, True
    return 0, False


def cached_count(usage: Mapping[str, Any], prompt_tokens: int) -> tuple[int, bool]:
    """Of `prompt_tokens`, those the engine served from its prefix cache, as OpenAI's
    `usage.prompt_tokens_details.cached_tokens` says (0 where it says nothing), never more than
    the prompt; and whether the count was plausible as reported (`token_count`)."""
    details = usage.get("prompt_tokens_details")
    if not isinstance(details, dict):
        return 0, True
    cached, plausible = token_count(details.get("cached_tokens"))
    return min(cached, prompt_tokens), plausible


@dataclass
class _Taken:
    """The records one read has taken so far, and when it must stop."""

    limit: int
    max_bytes: int
    request_ids: list[str] = field(default_factory=list)
    records: list[bytes] = field(default_factory=list)
    size: int = 0
    out_of_bytes: bool = False  # a record did not fit: the read ends before it

    def full(self) -> bool:
        return self.out_of_bytes or len(self.records) >= self.limit

    def fits(self, size: int) -> bool:
        """Whether a record of `size` bytes may be taken (the first always may)."""
        self.out_of_bytes = bool(self.records) and self.size + size > self.max_bytes
        return not self.out_of_bytes

    def add(self, request_id: str, record: bytes) -> None:
        self.request_ids.append(request_id)
        self.records.append(record)
        self.size += len(record) + 1


class SpoolBusy(RuntimeError):
    """Another gateway process holds this spool directory."""


@dataclass(frozen=True, order=True)
class Position:
    """A place in the spool: a segment number and a byte offset in it."""

    segment: int
    offset: int


@dataclass(frozen=True)
class Batch:
    """Records read from `start` up to `end`, oldest first, for one shipment."""

    start: Position
    end: Position
    request_ids: list[str]
    records: list[bytes]  # each one record's JSON, as appended


class UsageSpool:
    def __init__(self, directory: Path, segment_bytes: int = 16 << 20) -> None:
        private_dir(directory)
        for path in directory.iterdir():  # also what an older gateway left 0644
            if path.is_file():
                path.chmod(FILE_MODE)
        self._dir = directory
        self._segment_bytes = segment_bytes
        # One process per spool: a second one would number and acknowledge segments too.
        self._lock_fd = os.open(
            directory / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE
        )
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise SpoolBusy(f"another gateway uses the usage spool in {directory}") from None
        self._state = threading.Lock()  # the acknowledged position, between shipper threads
        self._acked = self._read_acked()
        for n in self._segments():
            if n < self._acked.segment:  # acknowledged, but the crash came before the delete
                self._path(n).unlink()
        self._appended = self._count_unacked()  # appends since open, plus those found unacked
        self._acked_count = 0
        self._synced = self._acked.segment  # segments from here on may need an fsync
        self._active = max([*self._segments(), self._acked.segment - 1]) + 1
        self._fd = os.open(self._path(self._active), OPEN_FLAGS, FILE_MODE)
        self._size = 0
        self._streams: dict[str, Callable[[], Mapping[str, Any]]] = {}  # by request id
        self._journaled = False  # whether a journal file may exist
        self._bill_cut_streams()

    # ----------------------------------------------------------------- the event loop's side

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one usage record (a `contracts.gateway.UsageRecord`'s fields) to the spool; a
        stream's record ends its tracking."""
        self._streams.pop(record["request_id"], None)
        line = _line(record)
        if self._size >= self._segment_bytes:
            self._rotate()
        written = os.write(self._fd, line)
        while written < len(line):  # a short write to a regular file: the disk is full
            written += os.write(self._fd, line[written:])
        self._size += len(line)
        self._appended += 1

    def pending(self) -> int:
        """Records appended and not yet acknowledged by the server."""
        return self._appended - self._acked_count

    def track(self, request_id: str, progress: Callable[[], Mapping[str, Any]]) -> None:
        """Journal an open stream at each sync tick as `progress()` then says, until its record
        is appended: what a crash before that bills."""
        self._streams[request_id] = progress

    def progress(self) -> list[Mapping[str, Any]]:
        """The records so far of the streams open now (on the event loop, where they change)."""
        return [progress() for progress in self._streams.values()]

    def close(self) -> None:
        self.write_journal(self.progress())  # streams still open are billed on the next start
        os.close(self._fd)
        os.close(self._lock_fd)

    def _rotate(self) -> None:
        fd = os.open(self._path(self._active + 1), OPEN_FLAGS, FILE_MODE)
        os.close(self._fd)
        self._fd, self._size = fd, 0
        self._active += 1  # after the last write to the old segment: readers may now finish it

    # -------------------------------------------------------- the shipper's side (a thread)

    def read(self, limit: int, max_bytes: int = MAX_BATCH_BYTES) -> Batch:
        """Up to `limit` whole records after the acknowledged position, oldest first, and no
        more than fit in `max_bytes` (always at least one)."""
        start = position = self._acked
        taken = _Taken(limit, max_bytes)
        while True:
            active = self._active  # read before the segment: one below it is complete
            offset, rest = self._read_segment(position, taken)
            position = Position(position.segment, offset)
            if taken.full() or position.segment >= active:
                return Batch(start, position, taken.request_ids, taken.records)
            if rest:
                log.warning("skipped a torn usage record", segment=position.segment)
            position = Position(position.segment + 1, 0)

    def _read_segment(self, position: Position, taken: "_Taken") -> tuple[int, bool]:
        """Add the segment's whole lines from `position` on; return the offset after the last
        line taken and whether bytes are left after it."""
        offset = position.offset
        try:
            f = self._path(position.segment).open("rb")
        except FileNotFoundError:
            return offset, False  # not created yet
        with f:
            f.seek(offset)
            while not taken.full():
                chunk = f.read(READ_CHUNK)
                end = chunk.rfind(b"\n") + 1
                if end == 0:
                    return offset, bool(chunk)
                for line in chunk[:end].splitlines(keepends=True):
                    if taken.full() or not taken.fits(len(line)):
                        break
                    offset += len(line)
                    if (rid := _request_id(line)) is not None:
                        taken.add(rid, line[:-1])
                f.seek(offset)
            return offset, bool(f.read(1))

    def ack(self, batch: Batch) -> None:
        """The server stored `batch`: move past it, deleting segments it finished."""
        with self._state:
            if batch.start != self._acked:
                return  # already acknowledged (a resend after a lost answer, or at shutdown)
            _write_atomically(self._dir / ACKED, b"%d %d\n" % (batch.end.segment, batch.end.offset))
            for n in range(self._acked.segment, batch.end.segment):
                self._path(n).unlink(missing_ok=True)
            self._acked = batch.end
            self._acked_count += len(batch.records)

    def write_journal(self, records: list[Mapping[str, Any]]) -> None:
        """Replace the journal of open streams with `records` (none: delete it)."""
        if records:
            lines = b"".join(_line(r) for r in records)
            _write_atomically(self._dir / JOURNAL, lines)
            self._journaled = True
        elif self._journaled:
            (self._dir / JOURNAL).unlink(missing_ok=True)
            self._journaled = False

    def sync(self) -> None:
        """Flush every segment written since the last call to the disk (for power loss)."""
        active = self._active
        for n in range(self._synced, active + 1):
            try:
                fd = os.open(self._path(n), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
        _fsync_dir(self._dir)
        self._synced = active

    # ---------------------------------------------------------------------------- opening

    def _path(self, n: int) -> Path:
        return self._dir / f"{n:012d}{SEGMENT_SUFFIX}"

    def _segments(self) -> list[int]:
        return sorted(
            int(p.name.removesuffix(SEGMENT_SUFFIX))
            for p in self._dir.iterdir()
            if p.name.endswith(SEGMENT_SUFFIX) and p.name[: -len(SEGMENT_SUFFIX)].isdigit()
        )

    def _read_acked(self) -> Position:
        try:
            segment, offset = (self._dir / ACKED).read_bytes().split()
            return Position(int(segment), int(offset))
        except FileNotFoundError:
            segments = self._segments()
            return Position(segments[0] if segments else 0, 0)

    def _bill_cut_streams(self) -> None:
        """Append the journaled records of streams a crash cut, then delete the journal. A crash
        before the delete appends them again: the server stores them once."""
        path = self._dir / JOURNAL
        try:
            lines = path.read_bytes().splitlines()
        except FileNotFoundError:
            return
        count = 0
        for line in lines:
            if _request_id(line + b"\n") is not None:
                self.append(orjson.loads(line))
                count += 1
        path.unlink()
        if count:
            log.warning("streams cut by a crash billed for what reached their clients", count=count)

    def _count_unacked(self) -> int:
        count = 0
        for n in self._segments():
            with self._path(n).open("rb") as f:
                if n == self._acked.segment:
                    f.seek(self._acked.offset)
                for line in f:
                    count += _request_id(line) is not None
        return count


def adopt_sqlite_spool(db: Path, spool: UsageSpool) -> int:
    """Move the records of an older gateway's SQLite spool (`usage-spool.db`) into `spool` and
    delete it; return how many. A crash midway copies some twice: the server stores them once."""
    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT record FROM spool ORDER BY rowid").fetchall()
    except sqlite3.OperationalError:
        rows = []  # no spool table: nothing was ever written
    finally:
        conn.close()
    for (raw,) in rows:
        spool.append(orjson.loads(raw))
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    return len(rows)


def _request_id(line: bytes) -> str | None:
    """The request id of one whole spooled line; None for a torn or unreadable one."""
    if not line.endswith(b"\n"):
        return None
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    rid = record.get("request_id") if isinstance(record, dict) else None
    return rid if isinstance(rid, str) else None


def _line(record: Mapping[str, Any]) -> bytes:
    """One record as the spool and the journal hold it: a JSON line, times in UTC."""
    return orjson.dumps(record, option=orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class UsageShipper:
    """Sends the spool to the control plane, oldest first, until it is empty."""

    def __init__(
        self,
        spool: UsageSpool,
        session: aiohttp.ClientSession,
        server_url: str,
        token: str,
        batch_size: int,
        flush_s: float,
        on_shipped: Callable[[list[str], int], None] | None = None,
        fsync_s: float = 0.0,
    ) -> None:
        self._spool = spool
        self._session = session
        self._url = server_url.rstrip("/") + "/api/v1/gateway/usage"
        self._headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        self._batch_size = batch_size
        self._flush_s = flush_s
        self._fsync_s = fsync_s
        # Told the request ids of each stored batch and the ack's `spend_seq` (gateway/spend.py).
        self._on_shipped = on_shipped

    async def ship_once(self) -> int:
        """Send one batch; return how many records left the spool."""
        batch = await asyncio.to_thread(self._spool.read, self._batch_size)
        if batch.start == batch.end:
            return 0
        if not batch.records:  # only empty segments or a torn line: move past them
            await asyncio.to_thread(self._spool.ack, batch)
            return 0
        body = b'{"records":[' + b",".join(batch.records) + b"]}"
        async with self._session.post(
            self._url, data=body, headers=self._headers, timeout=aiohttp.ClientTimeout(total=30)
        ) as r:
            r.raise_for_status()
            ack = UsageAck.model_validate_json(await r.read())
        if ack.rejected:
            log.warning("the server set usage records aside as invalid", count=ack.rejected)
        await asyncio.to_thread(self._spool.ack, batch)
        if self._on_shipped is not None:
            self._on_shipped(batch.request_ids, ack.spend_seq)
        return len(batch.records)

    async def run(self) -> None:
        backoff = Backoff()
        while True:
            try:
                sent = await self.ship_once()
            except (aiohttp.ClientError, TimeoutError, ValueError) as e:
                delay = backoff.next_delay()
                log.warning("usage not shipped; kept in the spool", error=str(e), retry_s=delay)
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            if sent < self._batch_size:
                await asyncio.sleep(self._flush_s)

    async def sync_forever(self) -> None:
        """Every `fsync_s` (never when 0), journal the open streams and flush the spool to the
        disk, off the event loop."""
        if self._fsync_s <= 0:
            return
        while True:
            await asyncio.sleep(self._fsync_s)
            progress = self._spool.progress()
            try:
                await asyncio.to_thread(self._spool.write_journal, progress)
                await asyncio.to_thread(self._spool.sync)
            except OSError as e:
                log.warning("usage spool not synced to disk", error=str(e))
