"""Bring your own endpoint: an OpenAI-compatible server run outside hashgrid, deployed under a
name (`hashgrid deploy NAME --endpoint URL`), routed by the gateways as that model's replica."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from hashgrid.client import ApiError
from hashgrid.common.net import free_port
from hashgrid.contracts.api.access import TokenCreate
from hashgrid.contracts.api.deployments import DeploymentChange, DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.sites import SiteCreate

from support.live import ADMIN_TOKEN, LiveFleet, LiveServer, ThreadedServer, wait_until

MESSAGES = [{"role": "user", "content": "hello"}]
USAGE = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}


class Upstream:
    """An OpenAI-compatible server of its own: answers every chat with "hi there", counting 7
    prompt and 2 completion tokens, streamed or not; `requests` holds the bodies it got."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        routes = [
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
        ]
        self.server = ThreadedServer(Starlette(routes=routes))

    async def _models(self, _: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "mine", "object": "model"}]})

    async def _chat(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self.requests.append(body)
        base = {"id": "chatcmpl-mine", "created": 0, "model": "mine"}
        if not body.get("stream"):
            message = {"role": "assistant", "content": "hi there"}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return JSONResponse(
                {**base, "object": "chat.completion", "choices": [choice], "usage": USAGE}
            )

        def event(delta: dict[str, str], usage: dict[str, int] | None = None) -> bytes:
            choices = [{"index": 0, "delta": delta, "finish_reason": None}] if delta else []
            chunk = {**base, "object": "chat.completion.chunk", "choices": choices}
            if usage is not None:
                chunk["usage"] = usage
            return f"data: {json.dumps(chunk)}\n\n".encode()

        async def events() -> Any:
            yield event({"role": "assistant", "content": "hi"})
            yield event({"content": " there"})
            if (body.get("stream_options") or {}).get("include_usage"):
                yield event({}, USAGE)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    up.server.start()
    try:
        yield up
    finally:
        up.server.stop()


def _view(server: LiveServer) -> dict[str, Any]:
    token = server.client().create_token(TokenCreate(name="gw", role="gateway")).token
    with server.http(token) as http:
        got = http.get("/api/v1/gateway/view", params={"after": 0, "wait": 0})
        got.raise_for_status()
        view: dict[str, Any] = got.json()
    return view


def test_an_endpoint_is_routed_as_one_replica_while_it_answers_and_never_placed(
    server: LiveServer, upstream: Upstream
) -> None:
    """The deployment has no catalog model and no replicas; an agent at its site is assigned
    nothing; the view lists the endpoint only once probes hear it, and drops it when they fail."""
    admin = server.client()
    admin.create_site(SiteCreate(name="home", region="us-south", country="US", power_mw=1.0))
    agent = server.join_node("home", "n1")

    made = admin.deploy(DeploymentCreate(name="mine", endpoint=f"{upstream.server.url}/v1/"))
    assert (made.model, made.engine, made.site, made.task) == (None, None, "home", "generate")
    assert made.endpoint == upstream.server.url, "stored as the base URL, without /v1"
    assert made.replica_list == []

    ready = wait_until(
        lambda: (d := admin.get_deployment("mine")).ready_replicas == 1 and d, 20, "a probe"
    )
    assert ready.condition is None
    assert any("answers" in e.message for e in ready.events)
    [model] = [m for m in _view(server)["models"] if m["name"] == "mine"]
    [replica] = model["replicas"]
    assert replica["replica_id"] == made.id
    assert replica["endpoint"] == upstream.server.url
    assert (replica["node_id"], replica["site"], replica["region"]) == (
        "external",
        "home",
        "us-south",
    )
    assert model["max_replicas"] == 0, "nothing will place another: requests never wait"
    assert [s["name"] for s in _view(server)["sites"]] == ["home"]

    assert admin.list_deployments()[0].endpoint == upstream.server.url
    with server.http() as http:
        assert http.get("/api/v1/replicas", params={"deployment": "mine"}).json() == []
    with agent as node:
        assigned = node.get("/api/v1/agent/assignments", params={"after": 0, "wait": 0})
        assert assigned.json()["assignments"] == []

    upstream.server.stop()
    gone = wait_until(
        lambda: (d := admin.get_deployment("mine")).ready_replicas == 0 and d, 20, "a failed probe"
    )
    assert gone.condition is not None
    assert gone.condition.startswith("endpoint not answering")
    [model] = [m for m in _view(server)["models"] if m["name"] == "mine"]
    assert model["replicas"] == []


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"name": "x", "endpoint": "ftp://127.0.0.1:1", "site": "a"}, "http"),
        ({"name": "x", "endpoint": "not a url", "site": "a"}, "http"),
        ({"name": "x", "endpoint": "http://127.0.0.1:1/v1?key=1", "site": "a"}, "query"),
        ({"name": "x", "endpoint": "http://127.0.0.1:1", "site": "nowhere"}, "no site"),
        ({"name": "x", "endpoint": "http://127.0.0.1:1"}, "needs site"),
        ({"endpoint": "http://127.0.0.1:1", "site": "a"}, "needs name"),
        ({"name": "x", "model": "m", "endpoint": "http://127.0.0.1:1", "site": "a"}, "not both"),
        ({"name": "x", "endpoint": "http://127.0.0.1:1", "site": "a", "replicas": 2}, "replicas"),
        ({"name": "x", "endpoint": "http://127.0.0.1:1", "site": "a", "regions": ["r"]}, "regions"),
        ({"name": "x", "endpoint": "http://127.0.0.1:1", "site": "a", "task": "draw"}, "task"),
        ({"model": "m", "site": "a"}, "go with endpoint"),
        ({"name": "x"}, "give model"),
    ],
)
def test_a_bad_endpoint_deployment_is_refused_as_a_problem_and_stores_nothing(
    server: LiveServer, body: dict[str, Any], said: str
) -> None:
    admin = server.client()
    admin.create_site(SiteCreate(name="a", region="us-south", country="US", power_mw=1.0))
    # two sites: none is the default
    admin.create_site(SiteCreate(name="b", region="eu-west", country="FR", power_mw=1.0))
    with server.http() as http:
        got = http.post("/api/v1/deployments", json=body)
    assert got.status_code in (400, 422), got.text
    assert got.headers["content-type"].startswith("application/problem+json")
    assert said in got.text
    assert admin.list_deployments() == []


def test_an_endpoint_without_site_takes_the_only_one(server: LiveServer) -> None:
    server.client().create_site(
        SiteCreate(name="only", region="us-south", country="US", power_mw=1.0)
    )
    made = server.client().deploy(
        DeploymentCreate(name="mine", endpoint="http://127.0.0.1:1", task="embed")
    )
    assert (made.site, made.task) == ("only", "embed")


@pytest.mark.parametrize(
    "change",
    [{"replicas": 2}, {"min_replicas": 0, "max_replicas": 4}, {"engine": "vllm"}, {"tier": "firm"}],
)
def test_scaling_or_rolling_an_external_deployment_is_refused(
    server: LiveServer, change: dict[str, Any]
) -> None:
    admin = server.client()
    admin.create_site(SiteCreate(name="a", region="us-south", country="US", power_mw=1.0))
    before = admin.deploy(DeploymentCreate(name="mine", endpoint="http://127.0.0.1:1"))
    with pytest.raises(ApiError) as refused:
        admin.change_deployment("mine", DeploymentChange(**change))
    assert refused.value.status == 400
    assert "external endpoint" in str(refused.value)
    after = admin.get_deployment("mine")
    assert (after.replicas, after.min_replicas, after.max_replicas, after.tier) == (
        before.replicas,
        before.min_replicas,
        before.max_replicas,
        before.tier,
    )
    admin.delete_deployment("mine")
    assert admin.list_deployments() == []


def test_the_openai_client_is_answered_from_the_endpoint_and_metered(
    tmp_path: Path, upstream: Upstream
) -> None:
    """Through a real gateway: answers streamed and not, each with a usage record of the
    endpoint's tokens; an endpoint that then refuses connections is ejected and the request
    gets an OpenAI-shaped 503 at once (no probe has dropped it yet: a long probe interval)."""
    with LiveFleet(tmp_path, endpoint_probe_interval_s=600) as fleet:
        fleet.admin.create_site(
            SiteCreate(name="home", region="us-south", country="US", power_mw=1.0)
        )
        fleet.admin.create_organization(OrganizationCreate(name="acme", kind="customer"))
        key = fleet.admin.create_key(KeyCreate(customer="acme")).key
        fleet.admin.deploy(DeploymentCreate(name="mine", endpoint=upstream.server.url))
        gateway = fleet.start_gateway()
        wait_until(lambda: gateway.ready_replicas("mine") == 1, 30, "the endpoint routable")
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)

        answer = client.chat.completions.with_raw_response.create(
            model="mine", messages=MESSAGES, extra_headers={"x-request-id": "byo-1"}
        )
        assert answer.headers["x-hashgrid-site"] == "home"
        completion = answer.parse()
        assert completion.choices[0].message.content == "hi there"
        stream = client.chat.completions.create(
            model="mine", messages=MESSAGES, stream=True, extra_headers={"x-request-id": "byo-2"}
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == (
            "hi there"
        )
        assert upstream.requests[-1]["stream_options"] == {"include_usage": True}

        def records() -> list[Any] | None:
            found = [u for u in fleet.admin.usage() if u.client_request_id in ("byo-1", "byo-2")]
            return found if len(found) == 2 else None

        for record in wait_until(records, 15, "two usage records"):
            assert (record.model, record.status_code, record.site) == ("mine", 200, "home")
            assert (record.prompt_tokens, record.completion_tokens) == (7, 2)
            assert record.node_id == "external"

        upstream.server.stop()
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model="mine", messages=MESSAGES)
        assert failed.value.status_code in (502, 503)
        error = failed.value.response.json()["error"]
        assert set(error) >= {"message", "type", "code"}
        deployment_id = fleet.admin.get_deployment("mine").id
        assert deployment_id in gateway.health()["ejected"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_cli_deploys_an_endpoint_and_shows_it(server: LiveServer) -> None:
    server.client().create_site(
        SiteCreate(name="home", region="us-south", country="US", power_mw=1.0)
    )
    url = f"http://127.0.0.1:{free_port()}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HASHGRID_")},
        "HASHGRID_SERVER": server.url,
        "HASHGRID_TOKEN": ADMIN_TOKEN,
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }

    def hashgrid(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "hashgrid", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    refused = hashgrid("deploy", "mine", "--endpoint", url, "--replicas", "2")
    assert refused.returncode == 1
    assert "--replicas" in refused.stderr
    assert server.client().list_deployments() == []
    done = hashgrid("deploy", "mine", "--endpoint", f"{url}/v1")
    assert done.returncode == 0, done.stderr
    assert f"from {url} at site home" in done.stdout
    shown = hashgrid("deployments", "show", "mine")
    assert f"endpoint {url}" in shown.stdout
    assert "site home" in shown.stdout
    assert "endpoint not" in shown.stdout, "the condition says why it is not routed"
    assert url in hashgrid("deployments", "list").stdout
    scaled = hashgrid("scale", "mine", "2")
    assert scaled.returncode != 0
    assert "external endpoint" in scaled.stderr
