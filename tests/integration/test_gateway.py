"""The gateway in front of a real control plane, a real agent and a real llama.cpp engine."""

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hashgrid.client import HashgridClient

from support.live import AgentProcess, LiveGateway, LiveServer, wait_until


@dataclass
class Stack:
    server: LiveServer
    gateway: LiveGateway
    admin: HashgridClient
    key: str

    def post(self, path: str, body: object, **headers: str) -> httpx.Response:
        return httpx.post(
            f"{self.gateway.url}{path}",
            json=body,
            headers={"authorization": f"Bearer {self.key}", **headers},
            timeout=30,
        )


@pytest.fixture(scope="module")
def stack(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One control plane, agent, engine and gateway for the whole module (engines are slow)."""
    from support.live import server_settings

    home = tmp_path_factory.mktemp("gateway-stack")
    server = LiveServer(server_settings(home / "server", f"sqlite+aiosqlite:///{home / 'db'}"))
    server.start()
    admin = server.client()
    admin.create_site("local", "us-south", "US", 1.0)
    admin.create_organization("acme", "customer")
    admin.add_model("tiny", str(tiny_model), tiny_model.stat().st_size)
    admin.deploy("tiny")
    admin.add_model("idle", str(tiny_model), tiny_model.stat().st_size)
    admin.deploy("idle", replicas=0)
    agent = AgentProcess(server.url, home / "agent", admin.create_join_token("local").token, "n1")
    gateway = LiveGateway(server.url, admin.create_token("gw", "gateway").token, home / "gateway")
    gateway.start()
    try:
        wait_until(lambda: gateway.ready_replicas("tiny") == 1, 60, "a routable replica")
        yield Stack(server, gateway, admin, admin.create_key("acme").key)
    finally:
        gateway.stop()
        agent.terminate()
        admin.close()
        server.stop()


CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 6}


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
    assert [m["id"] for m in r.json()["data"]] == ["idle", "tiny"]
    assert httpx.get(f"{stack.gateway.url}/v1/models").status_code == 401


def test_request_ids_are_echoed_or_made(stack: Stack) -> None:
    mine = stack.post("/v1/chat/completions", CHAT, **{"x-request-id": "abc-123"})
    assert mine.headers["x-request-id"] == "abc-123"
    made = stack.post("/v1/chat/completions", CHAT)
    assert made.headers["x-request-id"].startswith("req_")
    assert stack.post("/v1/chat/completions", {"model": "gpt-9"}).headers["x-request-id"]


def test_stream_passes_events_through_as_they_come(stack: Stack) -> None:
    """Events reach the client one by one (not as one buffered body), ending with [DONE]."""
    body = {**CHAT, "stream": True, "max_tokens": 12}
    arrivals: list[bytes] = []
    with httpx.stream(
        "POST",
        f"{stack.gateway.url}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {stack.key}"},
        timeout=30,
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        arrivals = list(r.iter_raw())
    text = b"".join(arrivals)
    events = [e for e in text.split(b"\n\n") if e.strip()]
    assert events[-1].strip() == b"data: [DONE]"
    chunks = [json.loads(e[len(b"data: ") :]) for e in events[:-1]]
    assert all("usage" not in c for c in chunks), "usage is stripped when not asked for"
    assert len(arrivals) > 1, "the stream arrived in one piece: it was buffered"


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
        found = {u.request_id: u for u in stack.admin.usage(limit=1000)}
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
