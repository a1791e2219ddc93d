"""uvicorn's httptools protocol with read timeouts, a header size cap and an idle-connection cap.

uvicorn (0.55) bounds none of these: a connection that sends nothing, half its headers or part of
a declared body is held until the client leaves (its keep-alive timer runs only after a
response); llhttp accepts headers of any size; and `limit_concurrency` counts idle connections
with busy ones, so a few hundred held sockets would turn every real request into its 503.
`BoundedHttpProtocol` adds to each connection a deadline for the phase it is in:

- waiting for a request's headers: `header_timeout_s` from the connection's opening, or
  `keep_alive_s + header_timeout_s` from the previous exchange's end (uvicorn's own keep-alive
  timer still closes a silent kept-alive connection after `keep_alive_s`); a deadline, not an
  idle timeout, so that a byte every few seconds does not hold it;
- reading a body: `body_timeout_s` since the last bytes, not counting time the application
  leaves them unread (uvicorn's flow control pauses reading then);
- serving: none (the application's own business; streams may last minutes).

The deadlines are plain numbers that one sweep per server checks (every quarter of the shortest
timeout, at most every second): a timer per connection, armed and cancelled at each phase, cost
a few microseconds a request. Connections waiting for a request are counted apart; past the cap
the oldest is closed, as nginx reuses its keep-alive connections when it runs out. The
overridden methods are uvicorn's parser callbacks; tests/integration/test_connections.py checks
each bound against a real server, so a uvicorn upgrade that moves them fails there.
"""

import asyncio
from enum import Enum
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from hashgrid.common.connection_limits import ConnectionLimits


class Phase(Enum):
    WAITING = "waiting for a request's headers"
    BODY = "reading a body"
    SERVING = "serving"


class ConnectionWatch:
    """A server's connections: one sweep checks their deadlines; those waiting are capped."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self._most_waiting = limits.max_idle_connections
        self._every_s = min(1.0, limits.header_timeout_s / 4, limits.body_timeout_s / 4)
        self._open: set[BoundedHttpProtocol] = set()
        self._waiting: dict[BoundedHttpProtocol, None] = {}  # oldest first
        self._sweep: asyncio.TimerHandle | None = None

    def opened(self, connection: "BoundedHttpProtocol") -> None:
        self._open.add(connection)
        if self._sweep is None:
            self._sweep = connection.loop.call_later(self._every_s, self._check, connection.loop)

    def closed(self, connection: "BoundedHttpProtocol") -> None:
        self._open.discard(connection)
        self._waiting.pop(connection, None)

    def waiting(self, connection: "BoundedHttpProtocol") -> None:
        self._waiting[connection] = None
        if len(self._waiting) > self._most_waiting:
            oldest = next(iter(self._waiting))
            del self._waiting[oldest]
            oldest.close()

    def busy(self, connection: "BoundedHttpProtocol") -> None:
        self._waiting.pop(connection, None)

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for connection in list(self._open):
            connection.check(now)
        # Stops with the last connection (a server that stopped leaves no timer behind).
        self._sweep = loop.call_later(self._every_s, self._check, loop) if self._open else None


class BoundedHttpProtocol(HttpToolsProtocol):
    """One connection; `limits` and `watch` are set per server by `protocol_for`."""

    limits: ClassVar[ConnectionLimits]
    watch: ClassVar[ConnectionWatch]  # not `connections`: uvicorn's own set has that name
    _phase = Phase.WAITING
    _since = 0.0  # loop time: the wait's start (WAITING), the last body bytes read (BODY)
    _due_s = 0.0  # WAITING: how long after `_since` the headers must be complete
    _header_bytes = 0  # received while WAITING

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive = self.limits.keep_alive_s  # type: ignore[assignment]
        self.watch.opened(self)
        self._wait(self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self.watch.closed(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # the parser's callbacks below run inside
        if self._phase is Phase.BODY:
            self._since = self.loop.time()
        elif self._phase is Phase.WAITING:
            # Headers still incomplete after this read: it was all headers. Checked per read, so
            # they are bounded to within one read (uvloop reads at most 250 KB).
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                self._refuse(431, "Request header fields too large")

    def on_headers_complete(self) -> None:
        self.watch.busy(self)
        self._phase = Phase.BODY
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = Phase.SERVING
        super().on_message_complete()
        if self.cycle.response_complete:  # answered before the body ended (a 413): wait anew
            self._wait(self.limits.keep_alive_s + self.limits.header_timeout_s)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Not while the body is still coming (a 413), nor when a pipelined request has begun.
        if (
            self._phase is Phase.SERVING
            and self.cycle.response_complete
            and not self.transport.is_closing()
        ):
            self._wait(self.limits.keep_alive_s + self.limits.header_timeout_s)

    def check(self, now: float) -> None:
        """Close the connection if its phase's deadline has passed (`ConnectionWatch`'s sweep)."""
        if self._phase is Phase.WAITING:
            if now - self._since < self._due_s:
                return
            if self._header_bytes:
                self._refuse(408, "Request timeout: headers incomplete")
            else:
                self.close()
        elif self._phase is Phase.BODY:
            if self.flow.read_paused:  # the application has not read what came: not the client
                self._since = now
            elif now - self._since >= self.limits.body_timeout_s:
                if self.cycle.response_started:
                    self.close()
                else:
                    self._refuse(408, "Request timeout: body incomplete")

    def close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    def _wait(self, headers_within_s: float) -> None:
        """The connection waits for a request, whose headers are due within the time."""
        self._phase = Phase.WAITING
        self._since = self.loop.time()
        self._due_s = headers_within_s
        self._header_bytes = 0
        self.watch.waiting(self)

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` in plain text outside the application, and close the connection."""
        if self.transport.is_closing():
            return
        body = message.encode()
        head = b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
        length = b"content-length: %d\r\n\r\n" % len(body)
        self.transport.write(STATUS_LINE[status] + head + length + body)
        self.transport.close()


def protocol_for(limits: ConnectionLimits) -> type[BoundedHttpProtocol]:
    """The protocol class of one server: its connections share `limits` and one count."""

    class ServerProtocol(BoundedHttpProtocol):
        pass

    ServerProtocol.limits = limits
    ServerProtocol.watch = ConnectionWatch(limits)
    return ServerProtocol
