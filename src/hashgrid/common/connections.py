"""uvicorn's httptools protocol with read timeouts, a header size cap and an idle-connection cap.

uvicorn (0.55) bounds none of these: a connection that sends nothing, half its headers or part of
a declared body is held until the client leaves (its keep-alive timer runs only after a
response); llhttp accepts headers of any size; and `limit_concurrency` counts idle connections
with busy ones, so a few hundred held sockets would turn every real request into its 503.
`BoundedHttpProtocol` adds, per connection, one timer for the phase it is in:

- waiting for headers: a deadline of `header_timeout_s` from the connection's opening, or of
  `keep_alive_s + header_timeout_s` from the previous exchange's end (uvicorn's own keep-alive
  timer still closes a silent kept-alive connection after `keep_alive_s`); a deadline, not an
  idle timeout, so that a byte every few seconds does not hold it;
- reading a body: an idle timeout of `body_timeout_s` since the last bytes, not counting time
  the application leaves them unread (uvicorn's flow control pauses reading then);
- serving: none (the application's own business; streams may last minutes).

Connections waiting for a request are counted in one `IdleConnections` per server; past its
cap the oldest is closed, as nginx reuses its keep-alive connections when it runs out. The
methods it overrides are uvicorn's parser callbacks; tests/integration/test_connections.py
checks each bound against a real server, so a uvicorn upgrade that moves them fails there.
"""

import asyncio
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from hashgrid.common.connection_limits import ConnectionLimits


class HeadersTooLarge(Exception):
    """Raised inside the parser's callback to stop it; answered as 431 by `send_400_response`."""


class IdleConnections:
    """Connections waiting for a request, oldest first; past `most`, the oldest is closed."""

    def __init__(self, most: int) -> None:
        self._most = most
        self._waiting: dict[BoundedHttpProtocol, None] = {}

    def add(self, connection: "BoundedHttpProtocol") -> None:
        self._waiting[connection] = None
        if len(self._waiting) > self._most:
            oldest = next(iter(self._waiting))
            self.discard(oldest)
            oldest.close()

    def discard(self, connection: "BoundedHttpProtocol") -> None:
        self._waiting.pop(connection, None)

    def __len__(self) -> int:
        return len(self._waiting)


class BoundedHttpProtocol(HttpToolsProtocol):
    """One connection; `limits` and `idle` are set per server by `protocol_for`."""

    limits: ClassVar[ConnectionLimits]
    idle: ClassVar[IdleConnections]
    _timer: asyncio.TimerHandle | None = None
    _header_bytes = 0
    _body_seen = 0.0  # loop time of the last body bytes read
    _message_done = True  # the last request's body is all read

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive = self.limits.keep_alive_s  # type: ignore[assignment]
        self._waiting(self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.idle.discard(self)
        super().connection_lost(exc)

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        self.idle.discard(self)
        self._header_bytes = 0
        self._message_done = False
        self._body_seen = self.loop.time()
        self._timer = self.loop.call_later(self.limits.body_timeout_s, self._body_idle)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_seen = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        self._message_done = True
        super().on_message_complete()
        if self.cycle.response_complete:  # answered before the body ended (a 413): wait anew
            self._waiting(self.limits.keep_alive_s + self.limits.header_timeout_s)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # self.cycle is the newest request's: a pipelined one may have begun.
        if self._message_done and self.cycle.response_complete and not self.transport.is_closing():
            self._waiting(self.limits.keep_alive_s + self.limits.header_timeout_s)

    def send_400_response(self, msg: str) -> None:
        if self._header_bytes > self.limits.max_header_bytes:
            self._refuse(431, "Request header fields too large")
        else:
            super().send_400_response(msg)

    def close(self) -> None:
        """Close the connection at once (one idle for too long, or past the idle cap)."""
        if not self.transport.is_closing():
            self.transport.close()

    def _waiting(self, headers_within_s: float) -> None:
        """The connection waits for a request: counted idle, its headers due within the time."""
        self.idle.add(self)
        self._disarm()
        self._timer = self.loop.call_later(headers_within_s, self._headers_late)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _count_header_bytes(self, count: int) -> None:
        self._header_bytes += count
        if self._header_bytes > self.limits.max_header_bytes:
            raise HeadersTooLarge

    def _headers_late(self) -> None:
        self._timer = None
        if self._header_bytes:
            self._refuse(408, "Request timeout: headers incomplete")
        else:
            self.close()

    def _body_idle(self) -> None:
        now = self.loop.time()
        if self.flow.read_paused:  # the application has not read what came: not the client's wait
            self._body_seen = now
        quiet = now - self._body_seen
        if quiet < self.limits.body_timeout_s:
            self._timer = self.loop.call_later(self.limits.body_timeout_s - quiet, self._body_idle)
            return
        self._timer = None
        if self.cycle.response_started:
            self.close()
        else:
            self._refuse(408, "Request timeout: body incomplete")

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
    """The protocol class of one server: its connections share `limits` and one idle count."""

    class ServerProtocol(BoundedHttpProtocol):
        pass

    ServerProtocol.limits = limits
    ServerProtocol.idle = IdleConnections(limits.max_idle_connections)
    return ServerProtocol
