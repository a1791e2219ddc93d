"""Each serving engine's load, read for the heartbeat.

llama-server, vLLM and SGLang serve their running and waiting requests (and, most of them, their
KV-cache fill) as Prometheus text (`engines/metrics.py`); it is scraped from the engine on
loopback with a short timeout, all engines at once. llama-cpp-python's server, llama.cpp's
fallback, has no metrics: its replicas are reported with no figures, since its load is what the
gateways observe. A scrape that fails, times out or
reads as something other than the engine's metrics reports the replica with unknown load: the
beat goes out all the same.
"""

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aiohttp
import structlog

from hashgrid.agent.engines import ENGINES, EngineRuntime
from hashgrid.agent.engines.metrics import read_load
from hashgrid.contracts.agent import ReplicaLoad

log = structlog.get_logger("hashgrid.agent.loads")

SCRAPE_TIMEOUT_S = 1.0
# A metrics page larger than this is not read (vLLM's, with every histogram, is ~100 KiB).
MAX_METRICS_BYTES = 8 << 20


@dataclass(frozen=True)
class ServingEngine:
    """An engine the supervisor has running and ready."""

    replica_id: str
    engine: str  # its name in `ENGINES`
    port: int  # where it listens on this node

    @property
    def base_url(self) -> str:
        """Where the engine answers, on this node's loopback."""
        return f"http://127.0.0.1:{self.port}"


class LoadScraper:
    """Reads engines' loads over one HTTP session; close it when the agent stops."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        within_s: float = SCRAPE_TIMEOUT_S,
        runtimes: Mapping[str, EngineRuntime] = ENGINES,
    ) -> None:
        self._host = host
        self._runtimes = runtimes
        self._within_s = within_s
        self._session: aiohttp.ClientSession | None = None
        self._failing: set[str] = set()  # replicas whose last scrape failed (logged once)

    async def loads(self, serving: Sequence[ServingEngine]) -> list[ReplicaLoad]:
        """One `ReplicaLoad` per engine in `serving`, in order; never raises."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._within_s)
            )
        results = await asyncio.gather(
            *(self._scrape(self._session, s) for s in serving), return_exceptions=True
        )
        out: list[ReplicaLoad] = []
        for engine, result in zip(serving, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                self._failed(engine, repr(result))
                out.append(ReplicaLoad(replica_id=engine.replica_id))
            else:
                out.append(result)
        self._failing &= {s.replica_id for s in serving}
        return out

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _scrape(self, session: aiohttp.ClientSession, engine: ServingEngine) -> ReplicaLoad:
        unknown = ReplicaLoad(replica_id=engine.replica_id)
        runtime = self._runtimes.get(engine.engine)
        path = runtime.metrics_path if runtime is not None else None
        if path is None:
            return unknown
        url = f"http://{self._host}:{engine.port}{path}"
        try:
            async with asyncio.timeout(self._within_s), session.get(url) as resp:
                if resp.status != 200:
                    self._failed(engine, f"HTTP {resp.status}")
                    return unknown
                text = await _read_text(resp)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as e:
            self._failed(engine, str(e) or type(e).__name__)
            return unknown
        load = read_load(engine.engine, text) if text is not None else None
        if load is None:
            self._failed(engine, "no load figures in the metrics")
            return unknown
        if engine.replica_id in self._failing:
            self._failing.discard(engine.replica_id)
            log.info("engine metrics readable again", replica=engine.replica_id)
        return ReplicaLoad(
            replica_id=engine.replica_id,
            running=load.running,
            waiting=load.waiting,
            kv_cache_usage=load.kv_cache_usage,
        )

    def _failed(self, engine: ServingEngine, why: str) -> None:
        if engine.replica_id not in self._failing:
            self._failing.add(engine.replica_id)
            log.warning("engine metrics unreadable", replica=engine.replica_id, error=why)


async def _read_text(resp: aiohttp.ClientResponse) -> str | None:
    """The body as text, or None when it is larger than `MAX_METRICS_BYTES`."""
    body = bytearray()
    async for chunk in resp.content.iter_chunked(1 << 16):
        body += chunk
        if len(body) > MAX_METRICS_BYTES:
            return None
    return body.decode("utf-8", errors="replace")  # the exposition format is UTF-8
