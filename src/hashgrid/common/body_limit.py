"""A request body size limit, as pure ASGI middleware.

A body that declares its length (Content-Length, what every OpenAI SDK sends) is judged on the
header alone: over the limit, the answer comes before a byte of it is read, and the connection
stays open while uvicorn discards the rest, so that a client that sends the whole body before
reading gets the answer rather than a reset (and does not retry, as it would after a reset).
Within the limit, the request passes untouched: uvicorn reads no more than the declared length.
A chunked body is read here up to the limit, then handed on whole; over it, the answer closes
the connection, since nothing bounds what is still to come. Responses, streams included, are
never touched. Not `BaseHTTPMiddleware`: it would wrap every response in a task and a queue.

A client gone while its body was read (it hung up, or the body timeout of connections.py closed
it) ends its request here, quietly: Starlette raises `ClientDisconnect` from `request.body()`,
there is nobody left to answer, and a traceback per held connection would flood the log.
"""

from collections.abc import Callable
from contextlib import suppress

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# What answers a body over the limit: the app's own error shape (OpenAI's, problem details).
TooLarge = Callable[[Scope], ASGIApp]


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, too_large: TooLarge) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.too_large = too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                # uvicorn's parser has checked that it is a number.
                if int(value) > self.max_bytes:
                    await self.too_large(scope)(scope, receive, send)
                    return
                break  # uvicorn reads no more than the declared length
            if name == b"transfer-encoding":
                chunked = True
        if chunked:
            body = await self._read(receive)
            if body is None:
                await self.too_large(scope)(scope, receive, _closing(send))
                return
            receive = _replay(body, receive)
        with suppress(ClientDisconnect):
            await self.app(scope, receive, send)

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, or None past the limit (or once the client has gone)."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            part: bytes = message.get("body", b"")
            size += len(part)
            if size > self.max_bytes:
                return None
            parts.append(part)
            if not message.get("more_body", False):
                return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` that gives `body` first, then what the client sends (its disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


def _closing(send: Send) -> Send:
    """`send` with `connection: close` on the response's start."""

    async def closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", []), (b"connection", b"close")]
            message = {**message, "headers": headers}
        await send(message)

    return closing
