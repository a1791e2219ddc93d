"""The processes `bench/gateway_overhead.py` starts on loopback, one role each:

    python bench/loopback.py upstream --port P [--pace-ms 2 --tokens 64]
    python bench/loopback.py ceiling --port P --upstream http://127.0.0.1:U
    python bench/loopback.py load --url URL --key K [--connections 32] [--duration 5]
        [--stream | --paced 64]

- `upstream`: a fixed-response OpenAI-compatible engine (raw asyncio + httptools): every
  `/v1/chat/completions` gets the same `chat.completion` with its `usage`, or the same event
  stream when the request asks for `stream` (with a usage chunk when `stream_options` asks),
  written at once. With `--pace-ms`, a stream is paced like an engine's instead: the role chunk
  and the first of `--tokens` token events at once, the next ones on a fixed asyncio schedule
  `--pace-ms` apart (a late timer does not push the later ones back), then the finish chunk, the
  usage chunk when asked and `data: [DONE]`; a client that goes away stops the stream.
- `ceiling`: a bare pass-through, Starlette on uvicorn with httptools and uvloop, one aiohttp
  client session, orjson and nothing else: the least a Python proxy on this stack can cost.
- `load`: keeps N keep-alive connections busy, one request at a time on each, for a warm-up and
  then a measured window; prints one JSON line (see `Load`). Raw asyncio + httptools, so it costs
  far less per request than any proxy it drives. With `--paced N` it streams, parses each event
  and times the content events: per-stream tokens/s and time to first token; a stream that does
  not bring exactly N content events, or carries an error, counts as an error.
"""

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any, cast

MODEL = "fixed"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 16}
HEAD = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000}
HEAD["model"] = MODEL
DONE_CHUNK = b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"  # 14 bytes, then the last chunk


def install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()


def fixed_answers() -> tuple[bytes, bytes, bytes]:
    """(a whole chat.completion, a stream without usage, a stream with a usage chunk)."""
    import orjson

    usage = {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18}
    whole = orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": MODEL,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
    )

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        body = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **extra,
        }
        return b"data: " + orjson.dumps(body) + b"\n\n"

    words = ["Hello", "!", " How", " can", " I", " help", " you", " today", "?"]
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": w}) for w in words]
    events.append(chunk({}, "stop"))
    usage_event = (
        b"data: "
        + orjson.dumps(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": MODEL,
                "choices": [],
                "usage": usage,
            }
        )
        + b"\n\n"
    )
    done = b"data: [DONE]\n\n"

    def chunked(parts: list[bytes]) -> bytes:
        return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"

    return whole, chunked([*events, done]), chunked([*events, usage_event, done])


def paced_events(tokens: int) -> tuple[bytes, list[bytes], bytes, bytes]:
    """A paced stream's parts, each already an HTTP chunk: (the role chunk, one chunk per token
    with the fixed words over and over, the finish chunk, the usage chunk); `data: [DONE]` and
    the last chunk follow."""
    import orjson

    def chunk(body: dict[str, Any]) -> bytes:
        event = b"data: " + orjson.dumps(body) + b"\n\n"
        return b"%x\r\n%s\r\n" % (len(event), event)

    def delta(content: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": content, "logprobs": None, "finish_reason": finish}
        return chunk({**HEAD, "choices": [choice]})

    words = ["Hello", "!", " How", " can", " I", " help", " you", " today", "?"]
    usage = {"prompt_tokens": 9, "completion_tokens": tokens, "total_tokens": 9 + tokens}
    return (
        delta({"role": "assistant", "content": ""}),
        [delta({"content": words[i % len(words)]}) for i in range(tokens)],
        delta({}, "stop"),
        chunk({**HEAD, "choices": [], "usage": usage}),
    )


def run_upstream(port: int, pace_ms: float = 0.0, tokens: int = 64) -> None:
    """Answer every chat completion with the same bytes, as fast as this process can; with
    `pace_ms`, stream `tokens` token events one every `pace_ms` instead, like an engine."""
    import httptools
    import orjson

    whole, stream, stream_usage = fixed_answers()
    role, token_events, finish, usage_event = paced_events(tokens)
    pace_s = pace_ms / 1000
    ok_json = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
        % (len(whole), whole)
    )
    sse = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    models = orjson.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]})
    ok_models = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
    ok_models %= (len(models), models)
    not_found = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
    bad = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"

    class Upstream(asyncio.Protocol):
        def __init__(self) -> None:
            self.parser = httptools.HttpRequestParser(self)
            self.url = b""
            self.body: list[bytes] = []

            self.pacing: asyncio.Task[None] | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

        def connection_lost(self, exc: Exception | None) -> None:
            if self.pacing is not None:
                self.pacing.cancel()  # the client went away: stop generating, as an engine does

        def data_received(self, data: bytes) -> None:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                self.transport.close()

        async def pace(self, usage: bool, keep_alive: bool) -> None:
            """One token event every `pace_s`, on a fixed schedule from the first (a late timer
            does not push the later tokens back), then the end of the stream."""
            loop = asyncio.get_running_loop()
            self.transport.write(sse + role + token_events[0])
            start = loop.time()
            for i in range(1, len(token_events)):
                delay = start + i * pace_s - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                self.transport.write(token_events[i])
            self.transport.write(finish + (usage_event if usage else b"") + DONE_CHUNK)
            if not keep_alive:
                self.transport.close()

        def on_url(self, url: bytes) -> None:
            self.url += url

        def on_body(self, body: bytes) -> None:
            self.body.append(body)

        def on_message_complete(self) -> None:
            path = self.url.split(b"?", 1)[0]
            raw = b"".join(self.body)
            self.url, self.body = b"", []
            if path.endswith(b"/chat/completions"):
                try:
                    request = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    self.transport.write(bad)
                    return
                if request.get("stream") is True:
                    options = request.get("stream_options") or {}
                    if pace_s:
                        keep_alive = self.parser.should_keep_alive()
                        usage = options.get("include_usage") is True
                        self.pacing = asyncio.ensure_future(self.pace(usage, keep_alive))
                        return
                    self.transport.write(sse)
                    self.transport.write(stream_usage if options.get("include_usage") else stream)
                else:
                    self.transport.write(ok_json)
            elif path.endswith(b"/models"):
                self.transport.write(ok_models)
            else:
                self.transport.write(not_found)
            if not self.parser.should_keep_alive():
                self.transport.close()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Upstream, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    install_uvloop()
    asyncio.run(serve())


def run_ceiling(port: int, upstream: str) -> None:
    """A bare pass-through: the least any Python proxy on this stack can cost."""
    import aiohttp
    import orjson
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    sessions: list[aiohttp.ClientSession] = []
    headers = {"content-type": "application/json"}
    target = upstream + "/v1/chat/completions"

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
            sessions.append(session)
            yield

    async def chat(request: Request) -> Response:
        body = orjson.loads(await request.body())
        answer = await sessions[0].post(target, data=orjson.dumps(body), headers=headers)
        if body.get("stream") is True:

            async def relay() -> AsyncIterator[bytes]:
                try:
                    async for data in answer.content.iter_any():
                        yield data
                finally:
                    answer.release()

            return StreamingResponse(relay(), answer.status, media_type="text/event-stream")
        try:
            data = await answer.read()
        finally:
            answer.release()
        return Response(data, answer.status, media_type="application/json")

    app = Starlette(
        routes=[Route("/v1/chat/completions", chat, methods=["POST"])], lifespan=lifespan
    )
    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_level="warning"
    )


@dataclass
class Load:
    """What one load run measured, as the load process reports it on stdout."""

    connections: int
    completed: int  # 200s inside the window
    completed_all: int  # 200s from the start of the warm-up: the work the target's CPU did
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    first_p50_ms: float  # time to the first byte of the body (the first event of a stream)
    first_p99_ms: float
    error_samples: list[str] = field(default_factory=list)
    # --paced only, over the streams inside the window: each stream's tokens/s is its content
    # events after the first over the time from the first to the last; TTFT is from the request
    # to the first content event.
    tokens_per_s_p50: float = float("nan")
    tokens_per_s_p10: float = float("nan")  # the slow tail: 90% of streams were faster
    ttft_p50_ms: float = float("nan")
    ttft_p99_ms: float = float("nan")
    buffered: int = 0  # streams whose content all came in one read: held back, not streamed


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run_load(
    url: str,
    key: str,
    connections: int,
    warmup_s: float,
    duration_s: float,
    stream: bool,
    paced: int = 0,
) -> Load:
    """Keep `connections` keep-alive connections busy, one request at a time on each. With
    `paced` (the token events each stream must bring), parse every stream's events and time its
    content events."""
    from urllib.parse import urlsplit

    import httptools
    import orjson

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if paced:
        body = orjson.dumps({**CHAT, "stream": True, "max_tokens": paced})
    else:
        body = orjson.dumps({**CHAT, "stream": True} if stream else CHAT)
    request = (
        f"POST {parts.path} HTTP/1.1\r\nhost: {host}:{port}\r\nauthorization: Bearer {key}\r\n"
        f"content-type: application/json\r\naccept: */*\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body
    clock = time.perf_counter

    class Client(asyncio.Protocol):
        def __init__(self) -> None:
            self.parser = httptools.HttpResponseParser(self)
            self.waiter: asyncio.Future[tuple[int, float, float]] | None = None
            self.first = 0.0
            self.closed = False
            self.buffer = b""
            self.tokens = 0  # content events in the current stream (--paced)
            self.reads = 0  # reads that brought them
            self.first_token = self.last_token = 0.0
            self.stream_error = ""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

        def send(self) -> asyncio.Future[tuple[int, float, float]]:
            self.first = 0.0
            self.buffer, self.tokens, self.reads, self.stream_error = b"", 0, 0, ""
            self.waiter = asyncio.get_running_loop().create_future()
            self.transport.write(request)
            return self.waiter

        def data_received(self, data: bytes) -> None:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError as e:
                self._fail(e)

        def on_body(self, data: bytes) -> None:
            now = clock()
            if not self.first:
                self.first = now
            if not paced:
                return
            self.buffer = (self.buffer + data).replace(b"\r\n", b"\n")
            *events, self.buffer = self.buffer.split(b"\n\n")
            content = 0
            for event in events:
                if not event.startswith(b"data: ") or event == b"data: [DONE]":
                    continue
                try:
                    chunk = orjson.loads(event[6:])
                except orjson.JSONDecodeError:
                    self.stream_error = f"not JSON: {event[:200]!r}"
                    continue
                if "error" in chunk:
                    self.stream_error = f"mid-stream error: {event[:200]!r}"
                choices = chunk.get("choices") or [{}]
                if (choices[0].get("delta") or {}).get("content"):
                    content += 1
            if content:
                if not self.tokens:
                    self.first_token = now
                    self.reads = 0
                self.tokens += content
                self.last_token = now
                self.reads += 1

        def on_message_complete(self) -> None:
            now = clock()
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result((self.parser.get_status_code(), self.first or now, now))
            if not self.parser.should_keep_alive():
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            self.closed = True
            self._fail(exc or ConnectionResetError("closed by the target"))

        def _fail(self, exc: BaseException) -> None:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(exc)

    latencies: list[float] = []
    firsts: list[float] = []
    rates: list[float] = []  # tokens/s, one per stream (--paced)
    ttfts: list[float] = []
    counts = {"window": 0, "all": 0, "errors": 0, "buffered": 0}
    error_samples: list[str] = []

    def error(what: str) -> None:
        counts["errors"] += 1
        if len(error_samples) < 5:
            error_samples.append(what)

    async def worker(window_start: float, window_end: float) -> None:
        loop = asyncio.get_running_loop()
        client: Client | None = None
        while clock() < window_end:
            if client is None or client.closed:
                try:
                    _, client = await loop.create_connection(Client, host, port)
                except OSError as e:
                    error(f"connect: {e}")
                    await asyncio.sleep(0.05)
                    continue
            started = clock()
            try:
                status, first, done = await asyncio.wait_for(client.send(), 60)
            except (OSError, TimeoutError, httptools.HttpParserError) as e:
                error(f"{type(e).__name__}: {e}")
                client.transport.close()
                client = None
                await asyncio.sleep(0.05)
                continue
            if status != 200:
                error(f"HTTP {status}")
                continue
            if paced and (client.stream_error or client.tokens != paced):
                error(client.stream_error or f"{client.tokens} of {paced} token events")
                continue
            counts["all"] += 1
            if started >= window_start and done <= window_end:
                counts["window"] += 1
                latencies.append((done - started) * 1000)
                firsts.append((first - started) * 1000)
                if paced:
                    ttfts.append((client.first_token - started) * 1000)
                    span = client.last_token - client.first_token
                    if client.reads < 2 or span <= 0:
                        counts["buffered"] += 1
                    else:
                        rates.append((client.tokens - 1) / span)
        if client is not None:
            client.transport.close()

    async def main() -> None:
        start = clock() + warmup_s
        await asyncio.gather(*(worker(start, start + duration_s) for _ in range(connections)))

    install_uvloop()
    asyncio.run(main())
    return Load(
        connections=connections,
        completed=counts["window"],
        completed_all=counts["all"],
        errors=counts["errors"],
        rps=counts["window"] / duration_s,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        first_p50_ms=percentile(firsts, 50),
        first_p99_ms=percentile(firsts, 99),
        error_samples=error_samples,
        tokens_per_s_p50=percentile(rates, 50),
        tokens_per_s_p10=percentile(rates, 10),
        ttft_p50_ms=percentile(ttfts, 50),
        ttft_p99_ms=percentile(ttfts, 99),
        buffered=counts["buffered"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    roles = parser.add_subparsers(dest="role", required=True)
    upstream = roles.add_parser("upstream", help="the fixed-response engine")
    upstream.add_argument("--port", type=int, required=True)
    upstream.add_argument(
        "--pace-ms", type=float, default=0.0, help="stream token events this far apart (0: at once)"
    )
    upstream.add_argument("--tokens", type=int, default=64, help="token events per paced stream")
    ceiling = roles.add_parser("ceiling", help="the bare pass-through")
    ceiling.add_argument("--port", type=int, required=True)
    ceiling.add_argument("--upstream", required=True, help="the engine's base URL")
    load = roles.add_parser("load", help="the load generator")
    load.add_argument("--url", required=True, help="the chat completions URL")
    load.add_argument("--key", default="none", help="the bearer key")
    load.add_argument("--connections", type=int, default=32)
    load.add_argument("--warmup", type=float, default=1.0, help="s before the window")
    load.add_argument("--duration", type=float, default=5.0, help="measured window, s")
    load.add_argument("--stream", action="store_true", help="ask for streamed completions")
    load.add_argument(
        "--paced",
        type=int,
        default=0,
        metavar="TOKENS",
        help="stream, expect TOKENS token events (a paced upstream) and time them",
    )
    args = parser.parse_args()
    if args.role == "upstream":
        run_upstream(args.port, args.pace_ms, args.tokens)
    elif args.role == "ceiling":
        run_ceiling(args.port, args.upstream)
    else:
        got = run_load(
            args.url,
            args.key,
            args.connections,
            args.warmup,
            args.duration,
            args.stream,
            args.paced,
        )
        print(json.dumps(asdict(got)))


if __name__ == "__main__":
    main()
