"""Body-size limits, read timeouts and the idle-connection cap, against real servers over raw
sockets: the gateway and the control plane as they serve (common/serving.py), with short limits."""

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from hashgrid.common.connection_limits import ConnectionLimits
from hashgrid.contracts.api.access import TokenCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate

from support.live import LiveGateway, LiveServer, ThreadedServer, server_settings, wait_until

MAX_BODY = 64 * 1024
# Short enough for a test; MARGIN is how long a test waits past them (CI machines are slow).
SHORT = {
    "max_body_bytes": MAX_BODY,
    "header_timeout_s": 1.0,
    "body_timeout_s": 1.0,
    "keep_alive_s": 1.0,
}
MARGIN_S = 30.0
HELD = 200  # connections of each kind held at once (issue 14 held 600 against one gateway)


@dataclass
class Stack:
    server: LiveServer
    gateway: LiveGateway
    key: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A control plane on SQLite and a gateway, both with SHORT limits."""
    home = tmp_path_factory.mktemp("connections")
    settings = server_settings(home / "server", f"sqlite+aiosqlite:///{home / 'db'}", **SHORT)
    with LiveServer(settings) as server, server.client() as admin:
        admin.create_organization(OrganizationCreate(name="acme", kind="customer"))
        key = admin.create_key(KeyCreate(customer="acme")).key
        token = admin.create_token(TokenCreate(name="gw", role="gateway")).token
        with LiveGateway(server.url, token, home / "gw", **SHORT) as gateway:
            wait_until(lambda: httpx.get(f"{gateway.url}/healthz").status_code == 200, 30, "view")
            yield Stack(server, gateway, key)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def _exchange(port: int, raw: bytes) -> bytes:
    """Send `raw`, then read until the server closes the connection (or MARGIN_S passes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), MARGIN_S)
    finally:
        writer.close()


def _head(path: str, *headers: str) -> bytes:
    return "\r\n".join([f"POST {path} HTTP/1.1", "host: test", *headers, "", ""]).encode()


def _split(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines)
    return int(status_line.split()[1]), headers, body


def _chunked(body: bytes, size: int = 8192) -> bytes:
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


def _chat(key: str, pad: int) -> tuple[list[str], bytes]:
    """Headers and a chat body of about `pad` bytes for a model nobody serves."""
    message = {"role": "user", "content": "x" * pad}
    body = json.dumps({"model": "absent", "messages": [message]}).encode()
    return [f"authorization: Bearer {key}", "content-type: application/json"], body


async def test_a_declared_length_over_the_limit_gets_413_in_openai_shape_before_the_body(
    stack: Stack,
) -> None:
    """Only the headers are sent: the answer comes without the gateway reading a body."""
    headers, _ = _chat(stack.key, 0)
    declared = [f"content-length: {MAX_BODY + 1}", "x-request-id: big-1", "connection: close"]
    head = _head("/v1/chat/completions", *headers, *declared)
    status, answer_headers, body = _split(await _exchange(_port(stack.gateway.url), head))
    assert status == 413
    assert answer_headers["x-request-id"] == "big-1"
    assert json.loads(body) == {
        "error": {
            "message": f"The request body is larger than {MAX_BODY} bytes, the most allowed.",
            "type": "invalid_request_error",
            "param": None,
            "code": "request_too_large",
        }
    }


def test_a_whole_body_over_the_limit_sent_before_reading_still_gets_the_413(
    stack: Stack,
) -> None:
    """A client that writes the whole body first (as httpx does) reads the 413, not a reset, and
    the 413 carries a request id of the gateway's own when the client sent none."""
    headers, body = _chat(stack.key, 4 * MAX_BODY)
    r = httpx.post(
        f"{stack.gateway.url}/v1/chat/completions",
        content=body,
        headers=dict(h.split(": ") for h in headers),
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"
    assert r.headers["x-request-id"].startswith("req_")


async def test_a_chunked_body_over_the_limit_gets_413_and_the_connection_closes(
    stack: Stack,
) -> None:
    headers, body = _chat(stack.key, MAX_BODY)
    head = _head("/v1/chat/completions", *headers, "transfer-encoding: chunked")
    status, answer_headers, answer = _split(
        await _exchange(_port(stack.gateway.url), head + _chunked(body))
    )
    assert (status, answer_headers["connection"]) == (413, "close")
    assert json.loads(answer)["error"]["code"] == "request_too_large"
    assert answer_headers["x-request-id"].startswith("req_")


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_within_the_limit_reaches_the_gateway(stack: Stack, framing: str) -> None:
    """The model named in the body is looked up: 404 model_not_found, not 413."""
    headers, body = _chat(stack.key, MAX_BODY - 200)
    assert len(body) <= MAX_BODY
    if framing == "chunked":
        raw = _head("/v1/chat/completions", *headers, "transfer-encoding: chunked") + _chunked(body)
    else:
        raw = _head("/v1/chat/completions", *headers, f"content-length: {len(body)}") + body
    raw = raw.replace(b"host: test", b"host: test\r\nconnection: close")
    status, _, answer = _split(await _exchange(_port(stack.gateway.url), raw))
    assert (status, json.loads(answer)["error"]["code"]) == (404, "model_not_found")


def test_the_control_plane_answers_413_in_problem_details(stack: Stack) -> None:
    r = httpx.post(f"{stack.server.url}/api/v1/usage", content=b"x" * (MAX_BODY + 1))
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json() == {
        "type": "about:blank",
        "title": "Request too large",
        "status": 413,
        "detail": f"The request body is larger than {MAX_BODY} bytes, the limit.",
    }


def _holds(path: str, *headers: str) -> dict[str, bytes]:
    """What a held connection sends before it sends nothing more, by kind; `path` is one whose
    handler reads the body (after authenticating `headers`)."""
    return {
        "nothing": b"",
        "half its headers": f"POST {path} HTTP/1.1\r\nhost: test\r\ncontent-ty".encode(),
        "part of its body": _head(path, *headers, "content-length: 100") + b'{"model"',
        "one request, then nothing (kept alive)": b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n",
    }


# What the server sends before it closes each: a 408 only where part of a request came.
CLOSED_WITH = {
    "nothing": b"",
    "half its headers": b"HTTP/1.1 408 ",
    "part of its body": b"HTTP/1.1 408 ",
    "one request, then nothing (kept alive)": b"HTTP/1.1 200 ",
}


async def _hold(port: int, sent: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that sent `sent`; the writer is kept, as dropping it would close it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(sent)
    await writer.drain()
    return reader, writer


@pytest.mark.parametrize("process", ["gateway", "server"])
async def test_held_connections_are_closed_and_the_server_answers_meanwhile(
    stack: Stack, process: str
) -> None:
    """HELD connections of each kind in HOLDS are all closed by the server (not by the test,
    which only waits), while and after which a normal request is answered."""
    if process == "gateway":
        url = stack.gateway.url
        holds = _holds("/v1/chat/completions", f"authorization: Bearer {stack.key}")
    else:
        url, holds = stack.server.url, _holds("/api/v1/agent/join")
    held = {
        kind: await asyncio.gather(*(_hold(_port(url), sent) for _ in range(HELD)))
        for kind, sent in holds.items()
    }
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{url}/healthz")).status_code == 200
    for kind, connections in held.items():
        # read() returns at the server's end of the connection: it is what is awaited here.
        reads = asyncio.gather(*(reader.read() for reader, _ in connections))
        answers = await asyncio.wait_for(reads, MARGIN_S)
        # On a loaded machine the server may sweep a connection before its first bytes are
        # read, and close it as one that sent nothing: every connection must be closed, and
        # those whose bytes were read answered as their kind.
        assert all(a.startswith(CLOSED_WITH[kind]) or a == b"" for a in answers), kind
        assert any(a.startswith(CLOSED_WITH[kind]) for a in answers), (kind, answers[0])
        assert CLOSED_WITH[kind] or set(answers) == {b""}
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{url}/healthz")).status_code == 200


async def _hello(_: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def _late_reader(request: Request) -> PlainTextResponse:
    """Reads the body only after twice the body timeout (as an app busy before reading)."""
    await asyncio.sleep(2.0)
    return PlainTextResponse(str(len(await request.body())))


@pytest.fixture
def small_server() -> Iterator[ThreadedServer]:
    """A bare app served as the processes serve it, with room for 20 idle connections and a
    body timeout of 1 s."""
    limits = ConnectionLimits(
        max_idle_connections=20,
        max_header_bytes=4096,
        header_timeout_s=60.0,
        keep_alive_s=60.0,
        body_timeout_s=1.0,
    )
    routes = [Route("/", _hello), Route("/late", _late_reader, methods=["POST"])]
    with ThreadedServer(Starlette(routes=routes), limits=limits) as server:
        yield server


async def test_idle_connections_past_the_cap_close_oldest_first(
    small_server: ThreadedServer,
) -> None:
    port = _port(small_server.url)
    opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    for _ in range(30):  # one at a time, so that the server sees them in this order
        opened.append(await asyncio.open_connection("127.0.0.1", port))
        await asyncio.sleep(0.01)
    first, last = opened[:10], opened[10:]
    ends = await asyncio.wait_for(asyncio.gather(*(r.read() for r, _ in first)), MARGIN_S)
    assert set(ends) == {b""}
    for reader, writer in last:  # still open: each answers a request
        writer.write(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
        await writer.drain()
        assert (await asyncio.wait_for(reader.readline(), MARGIN_S)).startswith(b"HTTP/1.1 200")
        writer.close()


async def test_headers_over_the_cap_get_431(small_server: ThreadedServer) -> None:
    """Headers that keep coming past the cap (their end never sent) are refused."""
    raw = b"GET / HTTP/1.1\r\nhost: test\r\nx-big: " + b"a" * 5000
    answer = await _exchange(_port(small_server.url), raw)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"connection: close" in answer


def test_a_body_the_app_leaves_unread_is_not_timed_out(small_server: ThreadedServer) -> None:
    """The client sent it all; the wait is the server's (uvicorn stops reading past 64 KiB)."""
    body = b"x" * (1024 * 1024)
    r = httpx.post(f"{small_server.url}/late", content=body, timeout=MARGIN_S)
    assert (r.status_code, r.text) == (200, str(len(body)))
