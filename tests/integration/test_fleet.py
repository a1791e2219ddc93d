"""Several real agents on loopback: drain moves work without failing requests, and a killed
node's replicas come back on another node."""

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from hashgrid.client import HashgridClient
from hashgrid.contracts.api.access import TokenCreate
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.nodes import DrainRequest
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.sites import SiteCreate

from support.live import (
    AgentProcess,
    LiveGateway,
    LiveServer,
    admitted,
    server_settings,
    wait_until,
)


@dataclass
class Load:
    """Steady non-streaming requests through the gateway, from a background thread."""

    url: str
    key: str
    statuses: Counter[int] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        headers = {"authorization": f"Bearer {self.key}"}
        with httpx.Client(timeout=30) as http:
            for _ in range(5000):  # bounded, whatever happens
                if self.stop.is_set():
                    return
                r = http.post(f"{self.url}/v1/chat/completions", json=body, headers=headers)
                self.statuses[r.status_code] += 1
                time.sleep(0.02)


@dataclass
class Fleet:
    server: LiveServer
    gateway: LiveGateway
    admin: HashgridClient
    agents: dict[str, AgentProcess]
    key: str

    def nodes_of(self, deployment: str) -> list[str]:
        names = {n.id: n.name for n in self.admin.list_nodes()}
        replicas = self.admin.get_deployment(deployment).replica_list
        return sorted(names[r.node_id] for r in replicas if r.status == "ready")


@pytest.fixture
def fleet(tiny_model: Path, tmp_path: Path) -> Iterator[Fleet]:
    server = LiveServer(server_settings(tmp_path / "server", f"sqlite+aiosqlite:///{tmp_path}/db"))
    server.start()
    admin = server.client()
    admin.create_site(SiteCreate(name="local", region="us-south", country="US", power_mw=1.0))
    admin.create_organization(OrganizationCreate(name="acme", kind="customer"))
    gateway = LiveGateway(
        server.url,
        admin.create_token(TokenCreate(name="gw", role="gateway")).token,
        tmp_path / "gw",
    )
    gateway.start()
    agents = {
        name: AgentProcess(
            server.url, tmp_path / name, admin.create_join_token("local").token, name
        )
        for name in ("n1", "n2")
    }
    try:
        wait_until(lambda: admitted(admin) == 2, 60, "both agents to join and pass verification")
        admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        yield Fleet(
            server, gateway, admin, agents, admin.create_key(KeyCreate(customer="acme")).key
        )
    finally:
        gateway.stop()
        for agent in agents.values():
            if agent.proc.poll() is None:
                agent.terminate()
        admin.close()
        server.stop()


def test_drain_moves_replicas_without_failing_requests(fleet: Fleet) -> None:
    fleet.admin.deploy(DeploymentCreate(model="tiny", replicas=2))
    wait_until(lambda: fleet.nodes_of("tiny") == ["n1", "n2"], 90, "one replica on each node")
    wait_until(lambda: fleet.gateway.ready_replicas("tiny") == 2, 10, "the gateway to route both")
    load = Load(fleet.gateway.url, fleet.key)
    worker = threading.Thread(target=load.run)
    worker.start()
    try:
        wait_until(lambda: load.statuses[200] >= 5, 30, "requests to flow")
        drained = fleet.admin.drain("n1", DrainRequest(deadline_s=20))
        assert drained.cordoned
        assert drained.drain_deadline is not None
        wait_until(lambda: fleet.nodes_of("tiny") == ["n2", "n2"], 90, "both replicas on n2")
        served_before = load.statuses[200]
        wait_until(lambda: load.statuses[200] >= served_before + 5, 30, "requests after drain")
    finally:
        load.stop.set()
        worker.join(60)
    assert set(load.statuses) == {200}, f"failed requests during the drain: {load.statuses}"
    n1 = next(n for n in fleet.admin.list_nodes() if n.name == "n1")
    assert n1.status == "ready"  # drained, not lost: its agent is still there
    assert n1.drain_deadline is not None


def test_a_killed_nodes_replicas_come_back_on_another_node(fleet: Fleet) -> None:
    fleet.admin.cordon("n2")
    fleet.admin.deploy(DeploymentCreate(model="tiny", replicas=1))
    wait_until(lambda: fleet.nodes_of("tiny") == ["n1"], 90, "the replica on n1")
    fleet.admin.uncordon("n2")
    wait_until(lambda: fleet.gateway.ready_replicas("tiny") == 1, 10, "the gateway to route")

    killed_at = time.monotonic()
    fleet.agents["n1"].kill()
    wait_until(
        lambda: any(n.status == "lost" for n in fleet.admin.list_nodes()), 30, "n1 to be lost"
    )
    lost_after = time.monotonic() - killed_at
    wait_until(lambda: fleet.nodes_of("tiny") == ["n2"], 90, "the replica back on n2")
    serving_after = time.monotonic() - killed_at
    wait_until(lambda: fleet.gateway.ready_replicas("tiny") == 1, 10, "the gateway to route")
    r = httpx.post(
        f"{fleet.gateway.url}/v1/chat/completions",
        json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
        headers={"authorization": f"Bearer {fleet.key}"},
        timeout=30,
    )
    assert r.status_code == 200
    ttl = fleet.server.settings.node_ttl_s
    print(f"\nnode killed -> lost in {lost_after:.1f}s (TTL {ttl}s), serving on n2 after "
          f"{serving_after:.1f}s")  # fmt: skip
