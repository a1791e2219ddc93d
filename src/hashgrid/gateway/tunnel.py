"""The gateway's end of the node tunnels: a listener nodes dial, and requests sent down them.

Nodes sit behind their sites' NAT with no port open; each agent dials every gateway's tunnel
listener and keeps the connection (`contracts/tunnel.py` has the frames, `agent/tunnel.py` the
node's end). A node proves who it is with its node credential: its digest must be one the view
lists (`GatewayView.nodes`), so a node whose credential is revoked or rotated is refused, and
its open tunnel is closed when the view stops listing it. A node that dials again replaces its
older tunnel (the old one is closed: it was probably cut without either side noticing).

`TunnelHub.open` sends one request down a node's tunnel and returns once the engine's answer
began, as an aiohttp connection does, so the proxy treats both alike (`gateway/upstreams.py`).
A tunnel lost before that raises `TunnelClosed`, a connection error: the proxy tries another
replica. Lost after, reading the answer raises it: the proxy ends the stream with an error,
billing what was delivered.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from hashgrid.common.secrets import hash_secret
from hashgrid.contracts.tunnel import (
    HEARTBEAT_S,
    MAX_FRAME_BYTES,
    PATH,
    BadFrame,
    Kind,
    frame,
    open_frame,
    parse,
    parse_head,
)

log = structlog.get_logger("hashgrid.gateway.tunnel")


class TunnelClosed(aiohttp.ClientConnectionError):
    """The node's tunnel closed, or the node could not reach its engine. A connection error to
    the proxy, as a refused or reset TCP connection to a replica is."""


class NoTunnel(TunnelClosed):
    """The node has no tunnel to this gateway now."""


_END = object()


class TunnelResponse:
    """One request's answer as it arrives down a tunnel, read as an aiohttp response is."""

    def __init__(self, tunnel: "Tunnel", stream: int) -> None:
        self._tunnel = tunnel
        self._stream = stream
        self._chunks: asyncio.Queue[Any] = asyncio.Queue()
        self._head: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self._ended = False
        self.status = 0
        self.content_type = ""

    @property
    def content(self) -> "TunnelResponse":
        return self

    async def iter_any(self) -> AsyncIterator[bytes]:
        """The answer's bytes as they arrive. Raises TunnelClosed if it is cut."""
        while True:
            item = await self._chunks.get()
            if item is _END:
                self._ended = True
                return
            if isinstance(item, TunnelClosed):
                self._ended = True
                raise item
            yield item

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_any()])

    def release(self) -> None:
        """Done with the answer; a request not answered whole is cancelled on the node."""
        self._tunnel.forget(self._stream, cancel=not self._ended)

    def close(self) -> None:
        self.release()

    # Fed by the tunnel's reader:
    def headed(self, status: int, content_type: str) -> None:
        if not self._head.done():
            self._head.set_result((status, content_type))

    def data(self, chunk: bytes) -> None:
        self._chunks.put_nowait(chunk)

    def ended(self) -> None:
        self._chunks.put_nowait(_END)

    def failed(self, error: TunnelClosed) -> None:
        if not self._head.done():
            self._head.set_exception(error)
        else:
            self._chunks.put_nowait(error)

    async def headed_within(self, timeout_s: float) -> None:
        try:
            self.status, self.content_type = await asyncio.wait_for(
                asyncio.shield(self._head), timeout_s
            )
        except BaseException:
            self._tunnel.forget(self._stream, cancel=True)
            raise


class Tunnel:
    """One node's connection: many requests at once, each on its own stream."""

    def __init__(self, node_id: str, digest: str, ws: web.WebSocketResponse) -> None:
        self.node_id = node_id
        self.digest = digest  # of the credential it opened with
        self.ws = ws
        self._streams: dict[int, TunnelResponse] = {}
        self._next_stream = 0
        self.closed = False

    async def request(
        self, replica_id: str, path: str, body: bytes, head_timeout_s: float
    ) -> TunnelResponse:
        if self.closed:
            raise TunnelClosed(f"the tunnel of node {self.node_id} closed")
        self._next_stream = (self._next_stream + 1) % 2**32
        stream = self._next_stream
        response = TunnelResponse(self, stream)
        self._streams[stream] = response
        try:
            await self.ws.send_bytes(open_frame(stream, replica_id, path, body))
        except (ConnectionError, RuntimeError) as e:  # closing under us
            self.forget(stream, cancel=False)
            raise TunnelClosed(f"the tunnel of node {self.node_id} closed: {e}") from None
        await response.headed_within(head_timeout_s)
        return response

    def forget(self, stream: int, *, cancel: bool) -> None:
        if self._streams.pop(stream, None) is not None and cancel and not self.closed:
            task = asyncio.ensure_future(self._send_quietly(frame(stream, Kind.CANCEL)))
            task.add_done_callback(_drop_result)

    async def _send_quietly(self, data: bytes) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_bytes(data)

    def receive(self, message: bytes) -> None:
        """One frame from the node. Raises BadFrame."""
        stream, kind, payload = parse(message)
        response = self._streams.get(stream)
        if response is None:
            return  # a stream the gateway gave up on: its CANCEL crossed this frame
        if kind is Kind.DATA:
            response.data(bytes(payload))
        elif kind is Kind.HEAD:
            response.headed(*parse_head(payload))
        elif kind is Kind.END:
            response.ended()
        elif kind is Kind.FAIL:
            reason = bytes(payload).decode(errors="replace")[:500]
            response.failed(TunnelClosed(f"node {self.node_id}: {reason}"))
        else:
            raise BadFrame(f"a node may not send {kind.name}")

    def close(self, reason: str) -> None:
        """Fail every request in flight; the connection itself is closed by its handler."""
        self.closed = True
        streams, self._streams = self._streams, {}
        for response in streams.values():
            response.failed(TunnelClosed(f"the tunnel of node {self.node_id} closed: {reason}"))


class TunnelHub:
    """Every node's tunnel to this gateway, by node id.

    `nodes` gives the view's node credential digests (digest -> node id); `changed` is called
    when a node's tunnel opens or closes, so the view's routable replicas follow.
    """

    def __init__(
        self, nodes: Callable[[], Mapping[str, str]], changed: Callable[[], None] = lambda: None
    ) -> None:
        self._nodes = nodes
        self._changed = changed
        self._tunnels: dict[str, Tunnel] = {}
        self._runner: web.AppRunner | None = None
        self._closing: set[asyncio.Future[bool]] = set()
        self._stopping = False

    def connected(self, node_id: str) -> bool:
        return node_id in self._tunnels

    def __len__(self) -> int:
        return len(self._tunnels)

    async def open(
        self, node_id: str, replica_id: str, path: str, body: bytes, head_timeout_s: float
    ) -> TunnelResponse:
        """Send a request to `replica_id` down `node_id`'s tunnel; return once its answer began.
        Raises TunnelClosed (NoTunnel when the node has none here), TimeoutError."""
        tunnel = self._tunnels.get(node_id)
        if tunnel is None:
            raise NoTunnel(f"node {node_id} has no tunnel to this gateway")
        return await tunnel.request(replica_id, path, body, head_timeout_s)

    def prune(self) -> None:
        """Close the tunnels whose credential the view no longer lists (revoked, rotated, the
        node deleted)."""
        nodes = self._nodes()
        for tunnel in list(self._tunnels.values()):
            if nodes.get(tunnel.digest) != tunnel.node_id:
                log.info(
                    "closing a tunnel whose credential is no longer valid", node=tunnel.node_id
                )
                closing = asyncio.ensure_future(
                    tunnel.ws.close(code=4401, message=b"credential no longer valid")
                )
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(PATH, self.handle)
        return app

    async def start(self, host: str, port: int, ssl_context: Any = None) -> None:
        self._runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port, ssl_context=ssl_context).start()

    async def stop(self) -> None:
        self._stopping = True  # a node that dials again meanwhile is turned away
        for tunnel in list(self._tunnels.values()):
            await tunnel.ws.close(code=1001, message=b"gateway stopping")
        if self._runner is not None:
            await self._runner.cleanup()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        digest = _digest(request.headers.get("authorization", ""))
        node_id = self._nodes().get(digest) if digest is not None else None
        if self._stopping:
            return web.json_response({"error": "the gateway is stopping"}, status=503)
        if digest is None or node_id is None:
            return web.json_response(
                {"error": "unknown node credential: not (or no longer) in this gateway's view"},
                status=401,
            )
        ws = web.WebSocketResponse(
            heartbeat=HEARTBEAT_S, max_msg_size=MAX_FRAME_BYTES, compress=False
        )
        await ws.prepare(request)
        older = self._tunnels.get(node_id)
        if older is not None:
            await older.ws.close(code=4409, message=b"replaced by a newer tunnel")
        tunnel = Tunnel(node_id, digest, ws)
        self._tunnels[node_id] = tunnel
        self._changed()
        log.info("node tunnel open", node=node_id, peer=request.remote)
        reason = "the node closed it"
        try:
            async for message in ws:
                if message.type is aiohttp.WSMsgType.BINARY:
                    tunnel.receive(message.data)
                elif message.type is aiohttp.WSMsgType.ERROR:
                    reason = f"error: {ws.exception()}"
        except BadFrame as e:
            reason = f"bad frame: {e}"
            await ws.close(code=1002, message=str(e)[:100].encode())
        finally:
            tunnel.close(reason)
            if self._tunnels.get(node_id) is tunnel:
                del self._tunnels[node_id]
                self._changed()
            log.info("node tunnel closed", node=node_id, reason=reason)
        return ws


def _digest(authorization: str) -> str | None:
    """The digest of a bearer credential, which the view's nodes are looked up by (as API keys
    are); None without one."""
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credential:
        return None
    return hash_secret(credential)


def _drop_result(task: "asyncio.Future[Any]") -> None:
    if not task.cancelled():
        task.exception()
