"""Autoscaling end to end: a deployment scales out on the demand gateways report, back in after
the window, to zero when idle, and from zero when a request comes: the gateway holds it until a
real llama.cpp replica is ready, and answers a clear 503 when none comes in time."""

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from hashgrid.contracts.api.access import TokenCreate
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentChange, DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.sites import SiteCreate
from hashgrid.contracts.gateway import DemandReport, ModelDemand

from support.live import LiveFleet, LiveServer, wait_until

MESSAGES = [{"role": "user", "content": "hi"}]


class Fleet(LiveFleet):
    """The fleet of these tests: one site, a customer with a key, the tiny model in the catalog,
    and autoscaling that acts within a test's patience."""

    def __init__(self, tmp_path: Path, tiny_model: Path) -> None:
        super().__init__(tmp_path, autoscale_interval_s=0.3, autoscale_down_delay_s=2.0)
        self.admin.create_site(
            SiteCreate(name="local", region="us-south", country="US", power_mw=1.0)
        )
        self.admin.create_organization(OrganizationCreate(name="acme", kind="customer"))
        self.admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        self.key = self.admin.create_key(KeyCreate(customer="acme")).key

    def add_agents(self, count: int) -> None:
        for _ in range(count):
            self.add_agent("local", f"n{len(self.agents)}")
        self.wait_for_nodes(len(self.agents))

    def events(self, name: str) -> list[str]:
        return [e.message for e in self.admin.get_deployment(name).events]

    def ready(self, name: str) -> int:
        return self.admin.get_deployment(name).ready_replicas


@pytest.fixture
def fleet(tiny_model: Path, tmp_path: Path) -> Iterator[Fleet]:
    with Fleet(tmp_path, tiny_model) as live:
        yield live


def test_scaled_to_zero_when_idle_and_woken_by_a_request_the_gateway_holds(fleet: Fleet) -> None:
    fleet.add_agents(1)
    admin = fleet.admin
    # Idle for a minute before zero: however slowly the first replica starts, it is not scaled
    # away before the test's first request; the idle period is shortened after that.
    deployed = admin.deploy(
        DeploymentCreate(model="tiny", min_replicas=0, max_replicas=1, idle_s=60.0)
    )
    assert (deployed.replicas, deployed.min_replicas, deployed.max_replicas) == (1, 0, 1)
    gateway = fleet.start_gateway()
    wait_until(lambda: gateway.ready_replicas("tiny") == 1, 90, "a warm first replica")
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=fleet.key, max_retries=0)
    client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=2)
    assert admin.change_deployment("tiny", DeploymentChange(idle_s=2.0)).replicas == 1

    wait_until(lambda: admin.get_deployment("tiny").replicas == 0, 30, "scale to zero")
    assert "scaled 1 -> 0: idle for 2 s" in fleet.events("tiny")
    wait_until(lambda: admin.get_deployment("tiny").replica_list == [], 30, "the replica gone")
    wait_until(lambda: gateway.ready_replicas("tiny") == 0, 10, "the gateway seeing none")

    asked = time.monotonic()
    answer = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=2)
    print(f"scale from zero: answered {time.monotonic() - asked:.2f} s after the request")
    assert answer.choices[0].message.content is not None
    assert answer.usage is not None
    assert answer.usage.completion_tokens > 0
    events = fleet.events("tiny")
    assert "scaled 0 -> 1: 1 request(s) waiting for a first replica" in events, events
    assert fleet.ready("tiny") == 1


def test_a_request_held_past_the_bound_gets_a_503_in_openai_shape(fleet: Fleet) -> None:
    """No node at all: nothing can come, and the wait ends as promised."""
    admin = fleet.admin
    admin.deploy(DeploymentCreate(model="tiny", min_replicas=0, max_replicas=2))
    gateway = fleet.start_gateway(cold_start_wait_s=1.5)
    wait_until(lambda: "tiny" in gateway.health()["ready_replicas"], 10, "the model in the view")
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=fleet.key, max_retries=0)
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=2)
    assert raised.value.status_code == 503
    error = raised.value.body
    assert isinstance(error, dict)
    assert error["code"] == "no_ready_replica"
    assert "none became ready within 1.5 s" in error["message"]
    # The held request woke the deployment; placement says why it cannot run.
    deployment = admin.get_deployment("tiny")
    assert deployment.replicas == 1
    assert deployment.condition == "1 replica(s) pending: no ready node"


def test_fixed_zero_answers_503_at_once(fleet: Fleet) -> None:
    """A deployment whose maximum is 0 can never have a replica: nothing to wait for."""
    fleet.admin.deploy(DeploymentCreate(model="tiny", replicas=0))
    gateway = fleet.start_gateway(cold_start_wait_s=60.0)
    wait_until(lambda: "tiny" in gateway.health()["ready_replicas"], 10, "the model in the view")
    client = openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key=fleet.key, max_retries=0, timeout=10
    )
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=2)
    assert raised.value.status_code == 503


def test_scales_out_on_reported_load_and_back_in_after_the_window(fleet: Fleet) -> None:
    """Two gateways report requests in flight (as real gateways post them); the deployment
    grows to their sum over the target, real replicas start on two nodes, and it shrinks back
    once the load is gone for the window."""
    fleet.add_agents(2)
    admin = fleet.admin
    deployment = admin.deploy(
        DeploymentCreate(model="tiny", min_replicas=1, max_replicas=3, target_load=2.0)
    )
    wait_until(lambda: fleet.ready("tiny") == 1, 90, "the first replica")
    gateway_token = admin.create_token(TokenCreate(name="gw", role="gateway")).token
    stop = threading.Event()

    def report(gateway: str, in_flight: int) -> None:
        demand = DemandReport(
            gateway=gateway,
            models=[ModelDemand(deployment=deployment.id, in_flight=in_flight, started=1)],
        )
        with fleet.server.http(token=gateway_token) as http:
            while not stop.wait(0.3):
                r = http.post("/api/v1/gateway/demand", json=demand.model_dump(mode="json"))
                assert r.status_code == 204, r.text

    reporters = [
        threading.Thread(target=report, args=(f"gw-{i}", 2), daemon=True) for i in range(2)
    ]
    for t in reporters:
        t.start()
    try:
        wait_until(lambda: admin.get_deployment("tiny").replicas == 2, 20, "scale out to 2")
        assert "scaled 1 -> 2: 4 request(s) in flight for a target of 2 each" in fleet.events(
            "tiny"
        )
        wait_until(lambda: fleet.ready("tiny") == 2, 90, "two ready replicas")
        nodes = {r.node_id for r in admin.get_deployment("tiny").replica_list}
        assert len(nodes) == 2, "spread over both nodes"
    finally:
        stop.set()
        for t in reporters:
            t.join(5)
    # Reports stop; they go stale, the window passes, and the deployment shrinks to its floor.
    wait_until(lambda: admin.get_deployment("tiny").replicas == 1, 30, "scale back in")
    assert any(
        "scaled 2 -> 1" in e and "the most needed over the last 2 s" in e
        for e in fleet.events("tiny")
    )
    wait_until(lambda: len(admin.get_deployment("tiny").replica_list) == 1, 30, "one replica")


def test_bounds_are_checked_and_change_nothing_when_wrong(server: LiveServer) -> None:
    with server.client() as admin, server.http() as http:
        admin.create_site(SiteCreate(name="local", region="us-south", country="US", power_mw=1.0))
        r = http.post("/api/v1/models", json={"name": "m", "source": "/x.gguf", "size_bytes": 1})
        assert r.status_code == 201, r.text
        bad = http.post(
            "/api/v1/deployments", json={"model": "m", "min_replicas": 4, "max_replicas": 2}
        )
        assert bad.status_code == 400
        assert bad.headers["content-type"] == "application/problem+json"
        assert "min_replicas (4) is above max_replicas (2)" in bad.json()["detail"]
        assert http.get("/api/v1/deployments").json() == []

        admin.deploy(DeploymentCreate(model="m", min_replicas=1, max_replicas=4))
        outside = http.patch("/api/v1/deployments/m", json={"replicas": 9, "max_replicas": 8})
        assert outside.status_code == 400
        assert "replicas (9) is outside 1..8" in outside.json()["detail"]
        kept = admin.get_deployment("m")
        assert (kept.replicas, kept.min_replicas, kept.max_replicas) == (1, 1, 4)

        fixed = admin.change_deployment("m", DeploymentChange(replicas=3))
        assert (fixed.replicas, fixed.min_replicas, fixed.max_replicas) == (3, 3, 3)
        bounded = admin.change_deployment(
            "m", DeploymentChange(min_replicas=0, max_replicas=2, ttft_target_ms=400.0)
        )
        assert (bounded.replicas, bounded.min_replicas, bounded.max_replicas) == (2, 0, 2)
        assert bounded.ttft_target_ms == 400.0
        assert "resized to 2 replica(s), autoscaled within 0..2" in [
            e.message for e in admin.get_deployment("m").events
        ]
