"""A corpus of malformed `/v1` requests against a real gateway, control plane and llama.cpp
engine: each is answered as OpenAI would (status, error shape, `param`), carries an
`x-request-id`, meters no token, and leaves the gateway serving."""

# ruff: noqa: E501 - the corpus is a table: one case a line reads better than wrapped calls

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from hashgrid.client import HashgridClient
from hashgrid.contracts.api.access import TokenCreate
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.prices import PriceCreate
from hashgrid.contracts.api.sites import SiteCreate

from support.live import AgentProcess, LiveGateway, LiveServer, server_settings, wait_until

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"
HELLO = [{"role": "user", "content": "Hello"}]
CONTEXT = 256  # the corpus model's context, so that a long prompt exceeds it


@dataclass(frozen=True)
class Case:
    name: str
    body: Any  # JSON, or bytes sent as they are
    status: int = 400
    param: str | None = None
    path: str = CHAT
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    code: str | None = None


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": HELLO, "max_tokens": 4, **fields}


def nested(depth: int) -> bytes:
    return b'{"model": "tiny", "messages": ' + b"[" * depth + b"]" * depth + b"}"


def deep_schema(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


def user(content: Any) -> dict[str, Any]:
    return chat(messages=[{"role": "user", "content": content}])


TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}

CORPUS = [
    # The body itself.
    Case("not json", b"{model: tiny}"),
    Case("empty body", b""),
    Case("json array", b"[1, 2]"),
    Case("json string", b'"hello"'),
    Case("json null", b"null"),
    Case("trailing garbage", b'{"model": "tiny"} x'),
    Case("not utf-8", b'{"model": "\xff\xfe"}'),
    Case("nested 300 deep", nested(300), param="messages[0]"),
    Case("nested 1100 deep", nested(1100)),
    Case("integer over 64 bits", b'{"model": "tiny", "max_tokens": 1' + b"0" * 30 + b"}"),
    # Keys and routes.
    Case("no key", chat(), 401, headers={"authorization": ""}, code="invalid_api_key"),
    Case("wrong key", chat(), 401, headers={"authorization": "Bearer sk-wrong"}),
    Case("basic auth", chat(), 401, headers={"authorization": "Basic dXNlcjpwYXNz"}),
    Case("unknown route", None, 404, path="/v1/nothing", method="GET", code="unknown_url"),
    Case("unknown model route", None, 404, "model", "/v1/models/nope", "GET"),
    Case("wrong method", None, 405, path=CHAT, method="GET", code="method_not_allowed"),
    Case("post to models", {}, 405, path="/v1/models"),
    # The model.
    Case("no model", {"messages": HELLO}, param="model", code="missing_required_parameter"),
    Case("model a number", chat(model=5), param="model", code="invalid_type"),
    Case("model null", chat(model=None), param="model"),
    Case("unknown model", chat(model="gpt-9"), 404, "model", code="model_not_found"),
    Case("model of 300 characters", chat(model="m" * 300), 404, "model"),
    Case("model holding NUL", chat(model="tiny\u0000"), 404, "model"),
    Case("empty model", chat(model=""), 404, "model"),
    Case("embedding model for chat", chat(model="tiny-embed"), param="model"),
    # Messages.
    Case("no messages", {"model": "tiny"}, param="messages"),
    Case("messages empty", chat(messages=[]), param="messages", code="empty_array"),
    Case("messages a string", chat(messages="hi"), param="messages"),
    Case("message a string", chat(messages=["hi"]), param="messages[0]"),
    Case("message without role", chat(messages=[{"content": "x"}]), param="messages[0].role"),
    Case("unknown role", chat(messages=[{"role": "robot", "content": "x"}]), param="messages[0].role"),
    Case("role a number", chat(messages=[{"role": 1, "content": "x"}]), param="messages[0].role"),
    Case("content a number", user(5), param="messages[0].content", code="invalid_type"),
    Case("content an object", user({"text": "x"}), param="messages[0].content"),
    Case("content missing", chat(messages=[{"role": "user"}]), param="messages[0].content"),
    Case("part of unknown type", user([{"type": "video", "x": 1}]), param="messages[0].content[0].type"),
    Case("text part without text", user([{"type": "text"}]), param="messages[0].content[0].text"),
    Case("text part a number", user([{"type": "text", "text": 3}]), param="messages[0].content[0].text"),
    Case("part a string", user(["hi"]), param="messages[0].content[0]"),
    Case("image url a number", user([{"type": "image_url", "image_url": {"url": 1}}]), param="messages[0].content[0].image_url.url"),
    Case("tool turn without id", chat(messages=[{"role": "tool", "content": "x"}]), param="messages[0].tool_call_id"),
    Case("tool calls malformed", chat(messages=[{"role": "assistant", "tool_calls": [{"id": "1"}]}]), param="messages[0].tool_calls[0].type"),
    Case("unknown message field", chat(messages=[{"role": "user", "content": "x", "mood": "sad"}]), param="messages[0].mood"),
    Case("name a number", chat(messages=[{"role": "user", "content": "x", "name": 7}]), param="messages[0].name"),
    # Parameters.
    Case("stream a number", chat(stream=1), param="stream", code="invalid_type"),
    Case("stream a string", chat(stream="true"), param="stream"),
    Case("stream options a string", chat(stream=True, stream_options="x"), param="stream_options"),
    Case("stream options without stream", chat(stream_options={"include_usage": True}), param="stream_options"),
    Case("include_usage a string", chat(stream=True, stream_options={"include_usage": "yes"}), param="stream_options.include_usage"),
    Case("max_tokens negative", chat(max_tokens=-1), param="max_tokens", code="integer_below_min_value"),
    Case("max_tokens zero", chat(max_tokens=0), param="max_tokens"),
    Case("max_tokens a decimal", chat(max_tokens=1.5), param="max_tokens"),
    Case("max_tokens a string", chat(max_tokens="8"), param="max_tokens"),
    Case("max_tokens over 32 bits", chat(max_tokens=2**31), param="max_tokens"),
    Case("max_completion_tokens zero", chat(max_completion_tokens=0), param="max_completion_tokens"),
    Case("n two", chat(n=2), param="n"),
    Case("n zero", chat(n=0), param="n"),
    Case("temperature 3", chat(temperature=3), param="temperature", code="decimal_above_max_value"),
    Case("temperature negative", chat(temperature=-1), param="temperature"),
    Case("temperature a word", chat(temperature="hot"), param="temperature"),
    Case("top_p 2", chat(top_p=2), param="top_p"),
    Case("top_p negative", chat(top_p=-0.1), param="top_p"),
    Case("stop a number", chat(stop=5), param="stop"),
    Case("stop five strings", chat(stop=["a", "b", "c", "d", "e"]), param="stop"),
    Case("stop numbers", chat(stop=[1]), param="stop[0]"),
    Case("presence_penalty 3", chat(presence_penalty=3), param="presence_penalty"),
    Case("frequency_penalty a word", chat(frequency_penalty="x"), param="frequency_penalty"),
    Case("logit_bias a list", chat(logit_bias=[1]), param="logit_bias"),
    Case("logit_bias a word key", chat(logit_bias={"x": 1}), param="logit_bias"),
    Case("logit_bias 200", chat(logit_bias={"1": 200}), param="logit_bias.1"),
    Case("logprobs a string", chat(logprobs="yes"), param="logprobs"),
    Case("top_logprobs 30", chat(logprobs=True, top_logprobs=30), param="top_logprobs"),
    Case("top_logprobs alone", chat(top_logprobs=2), param="top_logprobs"),
    Case("seed a string", chat(seed="x"), param="seed"),
    Case("tools an object", chat(tools={"a": 1}), param="tools"),
    Case("tool empty", chat(tools=[{}]), param="tools[0].type"),
    Case("tool name with space", chat(tools=[{"type": "function", "function": {"name": "a b"}}]), param="tools[0].function.name"),
    Case("tool parameters too deep", chat(tools=[{"type": "function", "function": {"name": "f", "parameters": deep_schema(150)}}]), param="tools[0].function.parameters"),
    Case("tool_choice unknown", chat(tools=[TOOL], tool_choice="sometimes"), param="tool_choice"),
    Case("tool_choice without tools", chat(tool_choice="auto"), param="tool_choice"),
    Case("response_format a string", chat(response_format="json"), param="response_format"),
    Case("response_format xml", chat(response_format={"type": "xml"}), param="response_format.type"),
    Case("json_schema without name", chat(response_format={"type": "json_schema", "json_schema": {}}), param="response_format.json_schema.name"),
    Case("unknown parameter", chat(temprature=0.5), param="temprature", code="unknown_parameter"),
    Case("user a number", chat(user=5), param="user"),
    # What passes every check but the model cannot take.
    Case("prompt over the context", chat(messages=[{"role": "user", "content": "hello " * 2000}]), code="context_length_exceeded"),
    # Completions.
    Case("no prompt", {"model": "tiny"}, param="prompt", path=COMPLETIONS),
    Case("prompt a number", {"model": "tiny", "prompt": 5}, param="prompt", path=COMPLETIONS),
    Case("batch of prompts", {"model": "tiny", "prompt": ["a", "b"]}, param="prompt", path=COMPLETIONS),
    Case("negative token id", {"model": "tiny", "prompt": [-1]}, param="prompt[0]", path=COMPLETIONS),
    Case("best_of 2", {"model": "tiny", "prompt": "x", "best_of": 2}, param="best_of", path=COMPLETIONS),
    Case("echo a string", {"model": "tiny", "prompt": "x", "echo": "y"}, param="echo", path=COMPLETIONS),
    Case("logprobs 10", {"model": "tiny", "prompt": "x", "logprobs": 10}, param="logprobs", path=COMPLETIONS),
    Case("completion max_tokens negative", {"model": "tiny", "prompt": "x", "max_tokens": -1}, param="max_tokens", path=COMPLETIONS),
    # Embeddings.
    Case("no input", {"model": "tiny-embed"}, param="input", path=EMBEDDINGS),
    Case("input empty string", {"model": "tiny-embed", "input": ""}, param="input", path=EMBEDDINGS),
    Case("input empty array", {"model": "tiny-embed", "input": []}, param="input", path=EMBEDDINGS),
    Case("input an object", {"model": "tiny-embed", "input": {"a": 1}}, param="input", path=EMBEDDINGS),
    Case("dimensions", {"model": "tiny-embed", "input": "x", "dimensions": 3}, param="dimensions", path=EMBEDDINGS),
    Case("encoding hex", {"model": "tiny-embed", "input": "x", "encoding_format": "hex"}, param="encoding_format", path=EMBEDDINGS),
    Case("chat model for embeddings", {"model": "tiny", "input": "x"}, param="model", path=EMBEDDINGS),
]  # fmt: skip


@dataclass
class Stack:
    gateway: LiveGateway
    admin: HashgridClient
    key: str


@pytest.fixture(scope="module")
def stack(
    tiny_model: Path, tiny_embedding_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("bad-input")
    server = LiveServer(server_settings(home / "server", f"sqlite+aiosqlite:///{home / 'db'}"))
    server.start()
    admin = server.client()
    admin.create_site(SiteCreate(name="local", region="us-south", country="US", power_mw=1.0))
    admin.create_organization(OrganizationCreate(name="acme", kind="customer"))
    # Priced, so that a token metered for a refused request would show as spend.
    size = tiny_model.stat().st_size
    admin.add_model(
        ModelCreate(
            name="tiny",
            source=str(tiny_model),
            size_bytes=size,
            context_length=CONTEXT,
        )
    )
    admin.deploy(DeploymentCreate(model="tiny"))
    admin.add_prices(PriceCreate(model="tiny", prompt=Decimal(1000), completion=Decimal(1000)))
    embed = tiny_embedding_model
    admin.add_model(
        ModelCreate(
            name="tiny-embed",
            source=str(embed),
            size_bytes=embed.stat().st_size,
            context_length=CONTEXT,
            task="embed",
        )
    )
    admin.deploy(DeploymentCreate(model="tiny-embed"))
    admin.add_prices(PriceCreate(model="tiny-embed", prompt=Decimal(1000), completion=Decimal(0)))
    agent = AgentProcess(server.url, home / "agent", admin.create_join_token("local").token, "n1")
    gateway = LiveGateway(
        server.url,
        admin.create_token(TokenCreate(name="gw", role="gateway")).token,
        home / "gateway",
    )
    gateway.start()
    try:
        wait_until(
            lambda: gateway.ready_replicas("tiny") == gateway.ready_replicas("tiny-embed") == 1,
            90,
            "routable replicas",
        )
        yield Stack(gateway, admin, admin.create_key(KeyCreate(customer="acme")).key)
    finally:
        gateway.stop()
        agent.terminate()
        admin.close()
        server.stop()


def send(stack: Stack, case: Case, request_id: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {stack.key}", "x-request-id": request_id}
    headers.update(case.headers)
    if not headers["authorization"]:
        del headers["authorization"]
    # The standard library's encoder: orjson refuses the deep bodies the corpus sends.
    content = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
    return httpx.request(
        case.method,
        stack.gateway.url + case.path,
        content=None if case.body is None else content,
        headers={"content-type": "application/json", **headers},
        timeout=60,
    )


def test_the_corpus_is_large_and_its_names_unique() -> None:
    assert len(CORPUS) >= 60
    assert len({c.name for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.name)
def test_a_malformed_request_gets_openais_answer_and_an_id(stack: Stack, case: Case) -> None:
    request_id = f"bad-{case.name.replace(' ', '-')}"
    r = send(stack, case, request_id)
    assert r.status_code == case.status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["x-request-id"] == request_id
    error = r.json()["error"]
    assert error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == ("invalid_request_error" if case.status < 500 else "server_error")
    if case.param is not None:
        assert error["param"] == case.param, error
    if case.code is not None:
        assert error["code"] == case.code, error
    for internals in ("Traceback", ".py", "Error:", "Exception"):
        assert internals not in error["message"]
    assert httpx.get(f"{stack.gateway.url}/healthz", timeout=5).status_code == 200


def test_refused_requests_meter_no_token_and_cost_nothing(stack: Stack) -> None:
    """Runs after the corpus: each authenticated refusal is a record of 0 tokens and $0."""
    keyed = [c for c in CORPUS if c.status != 401 and c.method == "POST" and c.status != 405]
    for case in keyed:
        send(stack, case, f"meter-{case.name.replace(' ', '-')}")

    def records() -> list[Any] | None:
        found = [
            u
            for u in stack.admin.usage(limit=10_000)
            if (u.client_request_id or "").startswith("meter-")
        ]
        return found if len(found) >= len(keyed) else None

    found = wait_until(records, 30, "a usage record per refused request")
    assert {(u.prompt_tokens, u.completion_tokens, u.cost_usd) for u in found} == {(0, 0, 0)}
    assert {u.status_code for u in found} <= {400, 404}


def test_a_valid_request_still_answers_after_the_corpus(stack: Stack) -> None:
    r = send(stack, Case("valid", chat(), 200), "valid-after")
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] > 0


@pytest.mark.parametrize(
    ("method", "path", "authorized", "status"),
    [
        ("GET", "/v1/models", False, 401),
        ("GET", "/v1/models", True, 200),
        ("GET", "/v1/models/tiny", True, 200),
        ("GET", "/v1/unknown", True, 404),
        ("POST", CHAT, True, 400),
        ("GET", "/healthz", False, 200),
    ],
)
def test_an_answer_without_a_client_id_carries_the_gateways_own(
    stack: Stack, method: str, path: str, authorized: bool, status: int
) -> None:
    headers = {"authorization": f"Bearer {stack.key}"} if authorized else {}
    r = httpx.request(method, stack.gateway.url + path, headers=headers, content=b"{}", timeout=10)
    assert r.status_code == status
    assert r.headers["x-request-id"].startswith("req_")


def test_a_fault_in_the_gateway_is_a_500_in_openais_shape_with_an_id_and_a_record(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway bug (injected: the request checks raise) is answered as OpenAI answers its
    own faults, never a plain-text 500, and the request is still metered."""

    def broken(endpoint: str, body: object) -> object:
        raise RuntimeError("injected fault")

    monkeypatch.setattr("hashgrid.gateway.proxy.normalize", broken)
    r = send(stack, Case("fault", chat(), 500), "gateway-fault")
    assert r.status_code == 500
    assert r.headers["x-request-id"] == "gateway-fault"
    assert r.headers["x-should-retry"] == "true"
    error = r.json()["error"]
    assert (error["type"], error["code"]) == ("server_error", "internal_error")
    assert "injected" not in error["message"]
    monkeypatch.undo()

    def record() -> Any:
        found = [
            u for u in stack.admin.usage(limit=10_000) if u.client_request_id == "gateway-fault"
        ]
        return found[0] if found else None

    assert wait_until(record, 15, "the fault's usage record").status_code == 500
