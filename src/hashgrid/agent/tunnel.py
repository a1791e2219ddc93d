"""The node's end of the tunnels: dial every gateway, answer what comes down from its engines.

The node opens no port. Its engines listen on loopback; the agent dials out to each gateway the
control plane lists in its heartbeat answers (`HeartbeatAck.gateways`) and keeps one WebSocket
to each (`contracts/tunnel.py` has the frames). Each request that comes down is sent to the
engine of the replica it names and its answer streamed back as it comes; a `CANCEL` closes the
engine's connection, which stops the generation. A tunnel that drops is dialled again with
backoff; one the gateway refuses (401: it does not know this credential yet, or no longer) too,
more slowly, since the gateway's view may simply not have caught up with a node that just joined.
"""

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable, Mapping

import aiohttp
import structlog

from hashgrid.common.backoff import Backoff
from hashgrid.common.waiting import cancel_all, sleep_unless
from hashgrid.contracts.tunnel import (
    HEARTBEAT_S,
    MAX_FRAME_BYTES,
    BadFrame,
    Kind,
    frame,
    head_frame,
    parse,
    parse_open,
)

log = structlog.get_logger("hashgrid.agent.tunnel")

DIAL_TIMEOUT_S = 10.0
JSON_HEADERS = {"content-type": "application/json"}
ENGINE_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=600.0)

# replica id -> the engine's base URL on this node (http://127.0.0.1:PORT)
Engines = Callable[[], Mapping[str, str]]


class TunnelClient:
    """One gateway's tunnel: dialled, served and dialled again until `stop`."""

    def __init__(
        self,
        url: str,
        credential: Callable[[], str],
        engines: Engines,
        session: aiohttp.ClientSession,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.url = url
        self._credential = credential
        self._engines = engines
        self._session = session
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self.connected = asyncio.Event()
        self.refusals = 0  # handshakes the gateway refused (401: a credential it does not know)

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff(base=0.5, cap=10.0)
        while not stop.is_set():
            try:
                async with self._session.ws_connect(
                    self.url,
                    headers={"authorization": f"Bearer {self._credential()}"},
                    heartbeat=HEARTBEAT_S,
                    max_msg_size=MAX_FRAME_BYTES,
                    compress=0,
                    ssl=self._ssl,
                    timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                ) as ws:
                    log.info("tunnel open", gateway=self.url)
                    backoff.reset()
                    self.connected.set()
                    try:
                        await self._serve(ws, stop)
                    finally:
                        self.connected.clear()
                    log.info("tunnel closed", gateway=self.url, code=ws.close_code)
            except aiohttp.WSServerHandshakeError as e:
                self.refusals += 1
                log.warning("gateway refused the tunnel", gateway=self.url, status=e.status)
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                log.warning("cannot reach the gateway", gateway=self.url, error=str(e))
            await sleep_unless(stop, backoff.next_delay())

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event) -> None:
        answering: dict[int, asyncio.Task[None]] = {}
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while True:
                receiving = asyncio.ensure_future(ws.receive())
                await asyncio.wait([receiving, stopped], return_when=asyncio.FIRST_COMPLETED)
                if not receiving.done():
                    receiving.cancel()
                    return
                message = receiving.result()
                if message.type is not aiohttp.WSMsgType.BINARY:
                    if message.type in (aiohttp.WSMsgType.TEXT,):
                        continue
                    return  # closed, closing or an error
                try:
                    self._receive(ws, message.data, answering)
                except BadFrame as e:
                    log.warning("bad frame from the gateway; closing", error=str(e))
                    return
        finally:
            stopped.cancel()
            await cancel_all(list(answering.values()))
            await ws.close()

    def _receive(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        message: bytes,
        answering: dict[int, asyncio.Task[None]],
    ) -> None:
        stream, kind, payload = parse(message)
        if kind is Kind.OPEN:
            replica, path, body = parse_open(payload)
            task = asyncio.create_task(self._answer(ws, stream, replica, path, body))
            answering[stream] = task
            task.add_done_callback(lambda _: _forget(answering, stream))
        elif kind is Kind.CANCEL:
            cancelled = answering.pop(stream, None)
            if cancelled is not None:
                cancelled.cancel()
        else:
            raise BadFrame(f"a gateway may not send {kind.name}")

    async def _answer(
        self, ws: aiohttp.ClientWebSocketResponse, stream: int, replica: str, path: str, body: bytes
    ) -> None:
        """Send one request to its engine and stream the answer back."""
        base = self._engines().get(replica)
        if base is None:
            await _send(
                ws, frame(stream, Kind.FAIL, f"replica {replica} is not served here".encode())
            )
            return
        headed = False
        try:
            async with self._session.post(
                base + path, data=body, headers=JSON_HEADERS, timeout=ENGINE_TIMEOUT
            ) as r:
                await ws.send_bytes(
                    head_frame(stream, r.status, r.headers.get("content-type", "application/json"))
                )
                headed = True
                async for chunk in r.content.iter_any():
                    await ws.send_bytes(frame(stream, Kind.DATA, chunk))
            await ws.send_bytes(frame(stream, Kind.END))
        except (aiohttp.ClientError, TimeoutError) as e:
            where = "mid-answer" if headed else "before answering"
            reason = f"the engine of replica {replica} failed {where}: {type(e).__name__}: {e}"
            await _send(ws, frame(stream, Kind.FAIL, reason.encode()[:500]))
        except ConnectionError:
            pass  # the tunnel closed under us: the gateway fails the stream itself


def _forget(answering: dict[int, asyncio.Task[None]], stream: int) -> None:
    answering.pop(stream, None)


async def _send(ws: aiohttp.ClientWebSocketResponse, data: bytes) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_bytes(data)


class Tunnels:
    """One `TunnelClient` per gateway the control plane lists; `follow` makes it so.

    A gateway that leaves the list keeps its tunnel for `forget_after_s` first: a control plane
    that just restarted lists no gateway until each reports again, and a tunnel that works
    should not be dropped for that.
    """

    def __init__(
        self,
        stop: asyncio.Event,
        credential: Callable[[], str],
        engines: Engines,
        ssl_context: ssl.SSLContext | None = None,
        forget_after_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stop = stop
        self._forget_after_s = forget_after_s
        self._clock = clock
        self._absent_since: dict[str, float] = {}
        self._credential = credential
        self._engines = engines
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._running: dict[str, tuple[TunnelClient, asyncio.Task[None], asyncio.Event]] = {}

    @property
    def clients(self) -> list[TunnelClient]:
        return [client for client, _, _ in self._running.values()]

    def follow(self, urls: list[str]) -> None:
        """Keep a tunnel to each of `urls`, and none to any other gateway."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), auto_decompress=False
            )
        for url in urls:
            if url not in self._running:
                own_stop = asyncio.Event()
                client = TunnelClient(
                    url, self._credential, self._engines, self._session, self._ssl
                )
                task = asyncio.create_task(self._run(client, own_stop), name=f"tunnel {url}")
                self._running[url] = (client, task, own_stop)
        now = self._clock()
        for url in urls:
            self._absent_since.pop(url, None)
        for url in [u for u in self._running if u not in urls]:
            since = self._absent_since.setdefault(url, now)
            if now - since >= self._forget_after_s:
                del self._absent_since[url]
                _, _, own_stop = self._running.pop(url)
                own_stop.set()

    async def _run(self, client: TunnelClient, own_stop: asyncio.Event) -> None:
        either = asyncio.Event()
        waits = [
            asyncio.ensure_future(self._stop.wait()),
            asyncio.ensure_future(own_stop.wait()),
        ]
        for w in waits:
            w.add_done_callback(lambda _: either.set())
        try:
            await client.run(either)
        finally:
            for w in waits:
                w.cancel()

    async def close(self) -> None:
        for _, _, own_stop in self._running.values():
            own_stop.set()
        await asyncio.gather(
            *(task for _, task, _ in self._running.values()), return_exceptions=True
        )
        self._running.clear()
        if self._session is not None:
            await self._session.close()
