"""Usage records: written first to a local SQLite spool (WAL), then sent to the control plane in
batches and deleted once it has them. The server stores each request id once, so a batch resent
after a crash or a lost answer is harmless: nothing is lost, nothing is counted twice."""

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import aiohttp
import orjson
import structlog

from hashgrid.common.backoff import Backoff
from hashgrid.contracts.gateway import UsageAck, UsageRecord

log = structlog.get_logger("hashgrid.gateway.metering")


class UsageSpool:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit: each record is on disk (in the WAL) before the response is finished.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spool (request_id TEXT PRIMARY KEY, record BLOB NOT NULL)"
        )

    def append(self, record: UsageRecord) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO spool VALUES (?, ?)",
            (record.request_id, orjson.dumps(record.model_dump(mode="json"))),
        )

    def pending(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM spool").fetchone()[0])

    def oldest(self, limit: int) -> list[tuple[str, bytes]]:
        rows = self._db.execute(
            "SELECT request_id, record FROM spool ORDER BY rowid LIMIT ?", (limit,)
        ).fetchall()
        return [(str(rid), bytes(rec)) for rid, rec in rows]

    def remove(self, request_ids: list[str]) -> None:
        self._db.executemany("DELETE FROM spool WHERE request_id = ?", [(r,) for r in request_ids])

    def close(self) -> None:
        self._db.close()


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
    ) -> None:
        self._spool = spool
        self._session = session
        self._url = server_url.rstrip("/") + "/api/v1/gateway/usage"
        self._headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        self._batch_size = batch_size
        self._flush_s = flush_s
        # Told the request ids of each stored batch and the ack's `spend_seq` (gateway/spend.py).
        self._on_shipped = on_shipped

    async def ship_once(self) -> int:
        """Send one batch; return how many records left the spool."""
        batch = self._spool.oldest(self._batch_size)
        if not batch:
            return 0
        body = b'{"records":[' + b",".join(rec for _, rec in batch) + b"]}"
        async with self._session.post(
            self._url, data=body, headers=self._headers, timeout=aiohttp.ClientTimeout(total=30)
        ) as r:
            r.raise_for_status()
            ack = UsageAck.model_validate_json(await r.read())
        request_ids = [rid for rid, _ in batch]
        self._spool.remove(request_ids)
        if self._on_shipped is not None:
            self._on_shipped(request_ids, ack.spend_seq)
        return len(batch)

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
