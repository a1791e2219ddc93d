"""Model visibility at the gateway, with a real control plane, agent and llama.cpp engine: a key
may call the public models and its customer's private ones; to any other key a private model is
answered exactly as a model that does not exist (OpenAI's 404 `model_not_found`)."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from hashgrid.contracts.api.access import Role, TokenCreate
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.sites import SiteCreate

from support.accounts import sign_up
from support.live import AgentProcess, LiveGateway, LiveServer, server_settings, wait_until

MESSAGES = [{"role": "user", "content": "hello"}]
# Each inference route, with a body naming no model yet.
ROUTES = {
    "/v1/chat/completions": {"messages": MESSAGES, "max_tokens": 4},
    "/v1/completions": {"prompt": "hello", "max_tokens": 4},
    "/v1/embeddings": {"input": "hello"},
}


@dataclass
class Tenants:
    """Customers a and b, each with a key it made itself; `tiny` is public, `tiny-a` private
    to a."""

    server: LiveServer
    gateway: LiveGateway
    key_a: str
    key_b: str

    def openai(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.gateway.url}/v1", api_key=key, max_retries=0)

    def listed(self, key: str) -> list[str]:
        return [m.id for m in self.openai(key).models.list()]

    def set_customer(self, deployment: str, customer: str | None) -> None:
        with self.server.http() as platform:
            r = platform.patch(f"/api/v1/deployments/{deployment}", json={"customer": customer})
        assert r.status_code == 200, r.text


def own_key(server: LiveServer, organization: str) -> str:
    """A key a newly signed-up customer admin made for its organization."""
    with server.http(sign_up(server, organization)) as customer_admin:
        r = customer_admin.post("/api/v1/keys", json={"name": "default"})
    assert r.status_code == 201, r.text
    key: str = r.json()["key"]
    return key


@pytest.fixture(scope="module")
def tenants(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenants]:
    """One control plane, agent (two engines) and gateway for the module (engines are slow)."""
    home = tmp_path_factory.mktemp("visibility")
    server = LiveServer(server_settings(home / "server", f"sqlite+aiosqlite:///{home / 'db'}"))
    server.start()
    admin = server.client()
    gateway: LiveGateway | None = None
    agent: AgentProcess | None = None
    try:
        key_a, key_b = own_key(server, "a"), own_key(server, "b")
        admin.create_site(SiteCreate(name="local", region="us-south", country="US", power_mw=1.0))
        admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        admin.deploy(DeploymentCreate(model="tiny"))
        with server.http() as platform:
            body = {"model": "tiny", "name": "tiny-a", "customer": "a"}
            assert platform.post("/api/v1/deployments", json=body).status_code == 201
        token = admin.create_join_token("local").token
        agent = AgentProcess(server.url, home / "agent", token, "n1")
        gateway = LiveGateway(
            server.url,
            admin.create_token(TokenCreate(name="gw", role=Role.GATEWAY)).token,
            home / "gw",
        )
        gateway.start()
        wait_until(lambda: gateway.ready_replicas("tiny") == 1, 90, "the public replica")
        wait_until(
            lambda: admin.get_deployment("tiny-a").ready_replicas == 1, 90, "the private replica"
        )
        yield Tenants(server, gateway, key_a, key_b)
    finally:
        if gateway is not None:
            gateway.stop()
        if agent is not None:
            agent.terminate()
        admin.close()
        server.stop()


def test_a_key_lists_the_public_models_and_its_customers_private_ones(tenants: Tenants) -> None:
    assert tenants.listed(tenants.key_a) == ["tiny", "tiny-a"]
    assert tenants.listed(tenants.key_b) == ["tiny"]


def test_a_customer_gets_answers_from_its_private_model(tenants: Tenants) -> None:
    client = tenants.openai(tenants.key_a)
    answer = client.chat.completions.create(model="tiny-a", messages=MESSAGES, max_tokens=4)
    assert answer.usage is not None
    assert answer.usage.completion_tokens > 0
    assert client.models.retrieve("tiny-a").id == "tiny-a"


def test_another_customers_key_cannot_call_a_private_model(tenants: Tenants) -> None:
    client = tenants.openai(tenants.key_b)
    with pytest.raises(openai.NotFoundError) as chat:
        client.chat.completions.create(model="tiny-a", messages=MESSAGES, max_tokens=4)
    assert (chat.value.code, chat.value.param) == ("model_not_found", "model")
    with pytest.raises(openai.NotFoundError) as retrieve:
        client.models.retrieve("tiny-a")
    assert retrieve.value.code == "model_not_found"
    answer = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=4)
    assert answer.choices  # the public model still answers it


def _as_missing(r: httpx.Response, name: str) -> tuple[int, str, object]:
    """An answer with the model's name taken out: what must not tell hidden from missing."""
    return r.status_code, r.headers["content-type"], json.loads(r.text.replace(name, "NAME"))


def test_a_private_model_is_answered_on_every_route_as_one_that_does_not_exist(
    tenants: Tenants,
) -> None:
    """The same status, type, code, param and message (with the name asked for) on each
    inference route, even one the model does not serve, and on retrieve."""
    auth = {"authorization": f"Bearer {tenants.key_b}"}
    url = tenants.gateway.url
    for route, body in ROUTES.items():
        hidden = httpx.post(f"{url}{route}", json={**body, "model": "tiny-a"}, headers=auth)
        missing = httpx.post(f"{url}{route}", json={**body, "model": "no-such"}, headers=auth)
        assert hidden.status_code == 404, route
        assert _as_missing(hidden, "tiny-a") == _as_missing(missing, "no-such"), route
        assert hidden.json()["error"]["code"] == "model_not_found"
    hidden = httpx.get(f"{url}/v1/models/tiny-a", headers=auth)
    missing = httpx.get(f"{url}/v1/models/no-such", headers=auth)
    assert hidden.status_code == 404
    assert _as_missing(hidden, "tiny-a") == _as_missing(missing, "no-such")


def test_the_gateways_health_names_no_private_model(tenants: Tenants) -> None:
    """Anyone may read /healthz: it counts the public models' replicas only."""
    assert tenants.gateway.health()["ready_replicas"] == {"tiny": 1}


def test_a_change_of_who_may_call_reaches_the_gateway_with_the_next_view(
    tenants: Tenants,
) -> None:
    try:
        tenants.set_customer("tiny-a", None)
        wait_until(lambda: "tiny-a" in tenants.listed(tenants.key_b), 15, "tiny-a made public")
        client = tenants.openai(tenants.key_b)
        assert client.chat.completions.create(model="tiny-a", messages=MESSAGES, max_tokens=4)
        tenants.set_customer("tiny-a", "b")
        wait_until(lambda: "tiny-a" not in tenants.listed(tenants.key_a), 15, "tiny-a moved to b")
        with pytest.raises(openai.NotFoundError):
            tenants.openai(tenants.key_a).models.retrieve("tiny-a")
    finally:
        tenants.set_customer("tiny-a", "a")
        wait_until(lambda: "tiny-a" in tenants.listed(tenants.key_a), 15, "tiny-a back with a")
