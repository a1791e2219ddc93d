"""The gateway in front of a real control plane, a real agent and a real llama.cpp engine."""

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from hashgrid.client import HashgridClient
from hashgrid.contracts.api.access import TokenCreate
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.sites import SiteCreate
from hashgrid.contracts.api.usage import UsageOut

from support.live import AgentProcess, LiveGateway, LiveServer, ThreadedServer, wait_until


@dataclass
class Stack:
    server: LiveServer
    gateway: LiveGateway
    admin: HashgridClient
    key: str

    def usage_of(self, client_request_id: str, count: int = 1) -> list[UsageOut]:
        """The usage records of requests sent with `client_request_id`, once `count` arrived."""

        def arrived() -> list[UsageOut] | None:
            records = self.admin.usage(limit=1000)
            found = [u for u in records if u.client_request_id == client_request_id]
            return found if len(found) >= count else None

        found: list[UsageOut] = wait_until(arrived, 15, f"usage of {client_request_id}")
        return found

    def post(self, path: str, body: object, **headers: str) -> httpx.Response:
        return httpx.post(
            f"{self.gateway.url}{path}",
            json=body,
            headers={"authorization": f"Bearer {self.key}", **headers},
            timeout=30,
        )


@pytest.fixture(scope="module")
def stack(
    tiny_model: Path, tiny_embedding_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """One control plane, agent, engine and gateway for the whole module (engines are slow)."""
    from support.live import server_settings

    home = tmp_path_factory.mktemp("gateway-stack")
    server = LiveServer(server_settings(home / "server", f"sqlite+aiosqlite:///{home / 'db'}"))
    server.start()
    admin = server.client()
    admin.create_site(SiteCreate(name="local", region="us-south", country="US", power_mw=1.0))
    admin.create_organization(OrganizationCreate(name="acme", kind="customer"))
    admin.add_model(
        ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
    )
    admin.deploy(DeploymentCreate(model="tiny"))
    admin.add_model(
        ModelCreate(name="idle", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
    )
    admin.deploy(DeploymentCreate(model="idle", replicas=0))
    embed = tiny_embedding_model
    admin.add_model(
        ModelCreate(
            name="tiny-embed", source=str(embed), size_bytes=embed.stat().st_size, task="embed"
        )
    )
    admin.deploy(DeploymentCreate(model="tiny-embed"))
    agent = AgentProcess(server.url, home / "agent", admin.create_join_token("local").token, "n1")
    gateway = LiveGateway(
        server.url,
        admin.create_token(TokenCreate(name="gw", role="gateway")).token,
        home / "gateway",
    )
    gateway.start()
    try:
        wait_until(lambda: gateway.ready_replicas("tiny") == 1, 60, "a routable replica")
        yield Stack(server, gateway, admin, admin.create_key(KeyCreate(customer="acme")).key)
    finally:
        gateway.stop()
        agent.terminate()
        admin.close()
        server.stop()


MESSAGES = [{"role": "user", "content": "hello"}]
CHAT = {"model": "tiny", "messages": MESSAGES, "max_tokens": 6}


def _error(r: httpx.Response) -> dict[str, object]:
    body = r.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return dict(error)


def test_bad_input_gets_openai_errors_and_reaches_no_engine(stack: Stack) -> None:
    url = f"{stack.gateway.url}/v1/chat/completions"
    auth = {"authorization": f"Bearer {stack.key}"}
    malformed = httpx.post(url, content=b"{nope", headers=auth)
    assert malformed.status_code == 400
    assert "not valid JSON" in str(_error(malformed)["message"])
    no_model = stack.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]})
    assert (no_model.status_code, _error(no_model)["param"]) == (400, "model")
    bad_messages = stack.post("/v1/chat/completions", {"model": "tiny", "messages": "hi"})
    assert (bad_messages.status_code, _error(bad_messages)["param"]) == (400, "messages")
    bad_prompt = stack.post("/v1/completions", {"model": "tiny", "prompt": 42})
    assert (bad_prompt.status_code, _error(bad_prompt)["param"]) == (400, "prompt")
    unknown = stack.post("/v1/chat/completions", {**CHAT, "model": "gpt-9"})
    assert (unknown.status_code, _error(unknown)["code"]) == (404, "model_not_found")
    no_key = httpx.post(url, json=CHAT)
    assert (no_key.status_code, _error(no_key)["code"]) == (401, "invalid_api_key")
    wrong_key = httpx.post(url, json=CHAT, headers={"authorization": "Bearer sk-hg-wrong"})
    assert (wrong_key.status_code, _error(wrong_key)["code"]) == (401, "invalid_api_key")


def test_a_model_without_ready_replicas_answers_503_at_once(stack: Stack) -> None:
    started = time.monotonic()
    r = stack.post("/v1/chat/completions", {**CHAT, "model": "idle"})
    assert r.status_code == 503
    assert _error(r)["code"] == "no_ready_replica"
    assert time.monotonic() - started < 10, "a 503 must not hang"


def test_models_lists_every_deployment_to_a_valid_key(stack: Stack) -> None:
    r = httpx.get(
        f"{stack.gateway.url}/v1/models", headers={"authorization": f"Bearer {stack.key}"}
    )
    assert [m["id"] for m in r.json()["data"]] == ["idle", "tiny", "tiny-embed"]
    assert httpx.get(f"{stack.gateway.url}/v1/models").status_code == 401


def test_request_ids_are_echoed_or_made(stack: Stack) -> None:
    mine = stack.post("/v1/chat/completions", CHAT, **{"x-request-id": "abc-123"})
    assert mine.headers["x-request-id"] == "abc-123"
    made = stack.post("/v1/chat/completions", CHAT)
    assert made.headers["x-request-id"].startswith("req_")
    assert stack.post("/v1/chat/completions", {"model": "gpt-9"}).headers["x-request-id"]


def test_a_client_repeating_its_request_id_is_billed_for_each_request(stack: Stack) -> None:
    """The usage record's key is the gateway's own id; the client's is kept beside it."""
    for _ in range(2):
        r = stack.post("/v1/chat/completions", CHAT, **{"x-request-id": "same-id"})
        assert (r.status_code, r.headers["x-request-id"]) == (200, "same-id")

    found = stack.usage_of("same-id", count=2)
    assert len(found) == 2
    assert len({u.request_id for u in found}) == 2
    assert all(u.completion_tokens > 0 for u in found)


class HeldStream:
    """An engine endpoint that streams one chat event, then holds the rest until released.

    The gateway's pass-through is what is under test, so the upstream's pace must be set by
    the test rather than by how fast llama.cpp happens to run on a busy machine.
    """

    def __init__(self, dies: bool = False, stops_short: bool = False) -> None:
        self.dies = dies  # released, it drops the connection instead of finishing
        self.stops_short = stops_short  # released, it ends the stream without `[DONE]`
        self.received: list[dict[str, Any]] = []  # the request bodies, as the engine got them
        self.cancelled = threading.Event()  # a held stream's generation was cancelled
        self.released = threading.Event()
        self.was_released = False
        self.server = ThreadedServer(
            Starlette(
                routes=[
                    Route("/v1/chat/completions", self._chat, methods=["POST"]),
                    Route("/v1/models", self._models, methods=["GET"]),
                ]
            )
        )

    async def _models(self, _: Request) -> Response:
        """What the control plane probes an external endpoint with."""
        return JSONResponse({"object": "list", "data": [{"id": "held", "object": "model"}]})

    async def _chat(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self.received.append(body)
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "chatcmpl-held",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "held",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "ok"},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
                }
            )

        def event(content: str) -> bytes:
            chunk = {
                "id": "chatcmpl-held",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "held",
                "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
            }
            return b"data: " + json.dumps(chunk).encode() + b"\n\n"

        async def events() -> AsyncIterator[bytes]:
            yield event("first")
            try:
                for _ in range(2000):  # up to 20 s: a buffering gateway fails, never hangs
                    if self.released.is_set():
                        self.was_released = True
                        break
                    await asyncio.sleep(0.01)
            except asyncio.CancelledError:  # the gateway closed the connection
                self.cancelled.set()
                raise
            if self.dies:
                raise ConnectionResetError("the engine died mid-stream")
            if self.stops_short:
                return
            yield event("second")
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


def _serve_from(stack: Stack, endpoint: str, name: str = "held") -> Callable[[], None]:
    """Model `name` served by `endpoint` (an engine run outside hashgrid) from a site of its
    own, once the control plane's probe heard it; returns its removal."""
    admin = stack.admin
    admin.create_site(
        SiteCreate(name=f"{name}-site", region=f"{name}-region", country="SE", power_mw=1.0)
    )
    admin.deploy(DeploymentCreate(name=name, endpoint=endpoint, site=f"{name}-site"))
    wait_until(lambda: stack.gateway.ready_replicas(name) == 1, 30, f"{name} routable")
    return lambda: admin.delete_deployment(name)


def test_stream_passes_events_through_as_they_come(stack: Stack) -> None:
    """The client reads the first event while the engine still holds back the rest: a
    gateway that buffered the stream would hand over nothing until the engine gave up."""
    upstream = HeldStream()
    upstream.server.start()
    close = _serve_from(stack, upstream.server.url)
    try:
        wait_until(lambda: stack.gateway.ready_replicas("held") == 1, 30, "a routable replica")
        body = {"model": "held", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with httpx.stream(
            "POST",
            f"{stack.gateway.url}/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {stack.key}"},
            timeout=30,
        ) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = r.iter_lines()
            first = next(line for line in lines if line.startswith("data: "))
            upstream.released.set()
            rest = [line for line in lines if line.startswith("data: ")]
        assert json.loads(first[len("data: ") :])["choices"][0]["delta"]["content"] == "first"
        assert upstream.was_released, "the first event reached the client only after the last"
        assert rest[-1] == "data: [DONE]"
        chunks = [json.loads(line[len("data: ") :]) for line in rest[:-1]]
        assert [c["choices"][0]["delta"]["content"] for c in chunks] == ["second"]
        assert all("usage" not in c for c in chunks), "usage is stripped when not asked for"
    finally:
        close()
        upstream.server.stop()


@pytest.mark.parametrize(
    ("how", "said"),
    [("dies", "mid-stream"), ("stops_short", "before it was complete")],
    ids=["connection-dropped", "closed-without-done"],
)
def test_an_engine_failing_mid_stream_ends_the_stream_with_an_openai_error(
    stack: Stack, how: str, said: str
) -> None:
    upstream = HeldStream(**{how: True})
    upstream.server.start()
    name = how.replace("_", "-")
    close = _serve_from(stack, upstream.server.url, name=name)
    try:
        wait_until(lambda: stack.gateway.ready_replicas(name) == 1, 30, "a routable replica")
        body = {"model": name, "messages": MESSAGES, "stream": True}
        headers = {"authorization": f"Bearer {stack.key}", "x-request-id": f"{name}-1"}
        url = f"{stack.gateway.url}/v1/chat/completions"
        with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            first = next(line for line in lines if line.startswith("data: "))
            upstream.released.set()
            rest = [line for line in lines if line.startswith("data: ")]
        assert json.loads(first[len("data: ") :])["choices"][0]["delta"]["content"] == "first"
        assert len(rest) == 1, "the stream ends with one error event"
        error = json.loads(rest[0][len("data: ") :])["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert said in error["message"]

        assert stack.usage_of(f"{name}-1")[0].status_code == 502
    finally:
        close()
        upstream.server.stop()


def test_checked_fields_reach_the_engine_as_sent_and_unknown_ones_are_refused(
    stack: Stack,
) -> None:
    """Tools, response_format, logprobs, stop and seed go to the engine as the client sent
    them; a stream only gains include_usage; a field OpenAI does not know is a 400."""
    upstream = HeldStream()
    upstream.released.set()
    upstream.server.start()
    close = _serve_from(stack, upstream.server.url, name="echo")
    try:
        wait_until(lambda: stack.gateway.ready_replicas("echo") == 1, 30, "a routable replica")
        body: dict[str, Any] = {
            "model": "echo",
            "messages": [{"role": "user", "content": "weather?", "name": "ana"}],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "weather",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                        },
                    },
                }
            ],
            "tool_choice": "auto",
            "response_format": {"type": "json_object"},
            "logprobs": True,
            "top_logprobs": 2,
            "n": 1,
            "stop": ["\n\n", "END"],
            "seed": 7,
            "temperature": 0.0,
        }
        assert stack.post("/v1/chat/completions", body).status_code == 200
        assert upstream.received[-1] == body
        future = {**body, "a_field_from_the_future": {"nested": [1, 2.5, None, "x"]}}
        refused = stack.post("/v1/chat/completions", future)
        assert refused.status_code == 400
        assert refused.json()["error"]["param"] == "a_field_from_the_future"
        assert upstream.received[-1] == body
        stream = {**body, "stream": True, "stream_options": {"include_usage": False}}
        with httpx.stream(
            "POST",
            f"{stack.gateway.url}/v1/chat/completions",
            json=stream,
            headers={"authorization": f"Bearer {stack.key}"},
            timeout=30,
        ) as r:
            assert r.status_code == 200
            r.read()
        sent = upstream.received[-1]
        assert sent == {**stream, "stream_options": {"include_usage": True}}
    finally:
        close()
        upstream.server.stop()


def test_a_client_that_goes_away_cancels_the_engines_generation(stack: Stack) -> None:
    upstream = HeldStream()
    upstream.server.start()
    close = _serve_from(stack, upstream.server.url, name="gone")
    try:
        wait_until(lambda: stack.gateway.ready_replicas("gone") == 1, 30, "a routable replica")
        body = {"model": "gone", "messages": MESSAGES, "stream": True}
        headers = {"authorization": f"Bearer {stack.key}", "x-request-id": "gone-1"}
        url = f"{stack.gateway.url}/v1/chat/completions"
        with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as r:
            next(line for line in r.iter_lines() if line.startswith("data: "))
        # The client hung up holding the first event; the engine still holds the rest.
        wait_until(upstream.cancelled.is_set, 15, "the engine's generation cancelled")
        assert not upstream.was_released

        assert stack.usage_of("gone-1")[0].status_code == 499
    finally:
        close()
        upstream.server.stop()


def test_every_request_leaves_one_usage_record_with_exact_tokens(stack: Stack) -> None:
    ok = stack.post("/v1/chat/completions", CHAT, **{"x-request-id": "usage-ok"})
    usage = ok.json()["usage"]
    stream_body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    streamed = stack.post("/v1/chat/completions", stream_body, **{"x-request-id": "usage-stream"})
    last = json.loads(streamed.text.strip().split("\n\n")[-2][len("data: ") :])
    assert last["choices"] == []
    assert last["usage"] == usage, "a stream is metered exactly like the same request unstreamed"
    stack.post("/v1/chat/completions", {**CHAT, "model": "gpt-9"}, **{"x-request-id": "usage-404"})

    def records() -> dict[str, object] | None:
        found = {u.client_request_id: u for u in stack.admin.usage(limit=1000)}
        wanted = {"usage-ok", "usage-stream", "usage-404"}
        return found if wanted <= set(found) else None

    found = wait_until(records, 15, "usage records at the control plane")
    for request_id in ("usage-ok", "usage-stream"):
        record = found[request_id]
        assert (record.prompt_tokens, record.completion_tokens) == (
            usage["prompt_tokens"],
            usage["completion_tokens"],
        )
        assert record.status_code == 200
        assert record.model == "tiny"
        assert record.replica_id is not None
        assert record.ttft_ms is not None
        assert record.duration_ms >= record.ttft_ms
    assert found["usage-404"].status_code == 404
    assert found["usage-404"].completion_tokens == 0


def test_embeddings_are_served_and_metered_through_the_openai_client(stack: Stack) -> None:
    wait_until(lambda: stack.gateway.ready_replicas("tiny-embed") == 1, 60, "an embedding replica")
    client = openai.OpenAI(base_url=f"{stack.gateway.url}/v1", api_key=stack.key, max_retries=0)
    got = client.embeddings.with_raw_response.create(
        model="tiny-embed", input=["hello there", "world"], extra_headers={"x-request-id": "emb-1"}
    )
    embeddings = got.parse()
    assert [d.index for d in embeddings.data] == [0, 1]
    assert all(
        d.embedding and all(isinstance(v, float) for v in d.embedding) for d in embeddings.data
    )
    assert embeddings.usage.prompt_tokens > 0

    with pytest.raises(openai.BadRequestError) as not_embed:
        client.embeddings.create(model="tiny", input="hi")
    assert not_embed.value.param == "model"
    with pytest.raises(openai.BadRequestError) as not_chat:
        client.chat.completions.create(
            model="tiny-embed", messages=[{"role": "user", "content": "hi"}]
        )
    assert not_chat.value.param == "model"
    bad = stack.post("/v1/embeddings", {"model": "tiny-embed", "input": 42.5})
    assert (bad.status_code, _error(bad)["param"]) == (400, "input")

    stored = stack.usage_of("emb-1")[0]
    assert (stored.prompt_tokens, stored.completion_tokens) == (embeddings.usage.prompt_tokens, 0)
    assert stored.endpoint == "/v1/embeddings"


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 12}},
            "required": ["city"],
        },
    },
}
FORCE_WEATHER = {"type": "function", "function": {"name": "get_weather"}}


def test_tool_calls_come_back_from_a_real_engine_whole_and_streamed(stack: Stack) -> None:
    """llama.cpp constrains the forced call's arguments to the function's JSON schema, so even
    the tiny random model makes a call of the right shape: what is under test is that the OpenAI
    client gets it through the gateway, whole and as streamed deltas, and that its tokens are
    metered. (llama.cpp's JSON grammar lets raw control characters into strings, which the tiny
    model sometimes emits: arguments are parsed with strict=False.)"""
    client = openai.OpenAI(base_url=f"{stack.gateway.url}/v1", api_key=stack.key, max_retries=0)
    whole = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER],
        tool_choice=FORCE_WEATHER,
        max_tokens=40,
        extra_headers={"x-request-id": "tools-whole"},
    )
    choice = whole.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments, strict=False)["city"], str)

    names, arguments, usage = set(), "", None
    for chunk in client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "Weather in Nairobi?"}],
        tools=[WEATHER],
        tool_choice=FORCE_WEATHER,
        max_tokens=40,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-request-id": "tools-stream"},
    ):
        usage = chunk.usage or usage
        for c in chunk.choices:
            for delta in c.delta.tool_calls or []:
                if delta.function is not None:
                    names.add(delta.function.name)
                    arguments += delta.function.arguments or ""
    assert names == {"get_weather"}
    assert isinstance(json.loads(arguments, strict=False)["city"], str)
    assert usage is not None
    assert usage.completion_tokens > 0
    stored = stack.usage_of("tools-stream")[0]
    assert stored.completion_tokens == usage.completion_tokens
    assert stack.usage_of("tools-whole")[0].completion_tokens == whole.usage.completion_tokens


def test_logprobs_come_back_from_a_real_engine(stack: Stack) -> None:
    client = openai.OpenAI(base_url=f"{stack.gateway.url}/v1", api_key=stack.key, max_retries=0)
    answer = client.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=3, logprobs=True, top_logprobs=2, seed=7
    )
    logprobs = answer.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.content is not None
    assert len(logprobs.content) == answer.usage.completion_tokens
    assert all(t.logprob <= 0 and len(t.top_logprobs) >= 2 for t in logprobs.content)


def test_an_engines_errors_reach_the_client_in_openais_shape_without_internals(
    stack: Stack,
) -> None:
    """llama-cpp-python answers an exception as a 500 holding its text; the client gets a 502
    it may retry, or a 400 it may not when the text says the request caused it."""
    answers = {
        "crash": (500, {"error": {"message": "Traceback: File \"x.py\", line 3: ggml_abort",
                                  "type": "internal_server_error", "param": None, "code": None}}),
        "template": (500, {"error": {"message": "ValueError: template refused role",
                                     "type": "internal_server_error"}}),
        "pydantic": (422, {"detail": [{"loc": ["body", "top_k"], "msg": "too big"}]}),
    }  # fmt: skip

    async def chat(request: Request) -> Response:
        status, body = answers[json.loads(await request.body())["messages"][0]["content"]]
        return JSONResponse(body, status_code=status)

    async def models(_: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "failing", "object": "model"}]})

    upstream = ThreadedServer(
        Starlette(
            routes=[
                Route("/v1/chat/completions", chat, methods=["POST"]),
                Route("/v1/models", models, methods=["GET"]),
            ]
        )
    )
    upstream.start()
    close = _serve_from(stack, upstream.url, name="failing")
    try:
        seen = {}
        for what in answers:
            body = {"model": "failing", "messages": [{"role": "user", "content": what}]}
            r = stack.post("/v1/chat/completions", body, **{"x-request-id": f"engine-{what}"})
            seen[what] = (r.status_code, r.headers.get("x-should-retry"), r.json()["error"])
        status, retry, error = seen["crash"]
        assert (status, retry, error["type"]) == (502, "true", "upstream_error")
        assert "Traceback" not in error["message"]
        assert ".py" not in error["message"]
        status, retry, error = seen["template"]
        assert (status, retry, error["type"]) == (400, "false", "invalid_request_error")
        assert "ValueError" not in error["message"]
        status, _, error = seen["pydantic"]
        assert (status, error["param"], error["message"]) == (400, "top_k", "too big")
        statuses = {u.client_request_id: u.status_code for u in stack.usage_of("engine-crash")}
        assert statuses == {"engine-crash": 502}
    finally:
        close()
        upstream.stop()
