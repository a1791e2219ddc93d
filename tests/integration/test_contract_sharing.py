"""A reserved replica shared with other customers only while its holder is idle: a real control
plane and gateway, a node speaking the agent protocol whose replica is an OpenAI-compatible
engine of the tests' own (it streams at a set pace). The deployment has nothing on demand; Acme
holds its one replica by contract."""

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from hashgrid.billing.contracts import hour_of
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.compute_contracts import ContractCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.sites import SiteCreate

from support.live import LiveFleet, LiveGateway, beating, wait_until
from support.tunnel import NodeTunnel
from support.upstream import PacedUpstream

CHAT = {"model": "paced", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def upstream() -> Iterator[PacedUpstream]:
    engine = PacedUpstream(tokens=20, pace_s=0.1)  # a stream of two seconds
    engine.server.start()
    yield engine
    engine.server.stop()


def test_another_customer_uses_a_reserved_replica_only_while_its_holder_is_idle(
    upstream: PacedUpstream, tmp_path: Path
) -> None:
    stop = threading.Event()
    with LiveFleet(tmp_path) as fleet:
        admin = fleet.admin
        admin.create_site(SiteCreate(name="local", region="us-south", country="US", power_mw=1.0))
        keys = {}
        for customer in ("acme", "globex"):
            admin.create_organization(OrganizationCreate(name=customer, kind="customer"))
            keys[customer] = admin.create_key(KeyCreate(customer=customer)).key
        admin.add_model(ModelCreate(name="paced", source="/nowhere/paced.gguf", size_bytes=1000))
        admin.deploy(DeploymentCreate(model="paced", replicas=0))
        now = hour_of(datetime.now(UTC))
        admin.create_contract(
            ContractCreate(
                customer="acme",
                model="paced",
                replicas=1,
                price_per_replica_hour=Decimal("1"),
                starts_at=now,
                ends_at=now + timedelta(hours=2),
            )
        )
        node = fleet.server.join_node("local", "n1")
        beating(node, stop)
        try:
            placed = wait_until(
                lambda: node.get("/api/v1/agent/assignments").json()["assignments"],
                20,
                "the reserved replica placed",
            )
            ready = {"status": "ready", "endpoint": upstream.server.url}
            path = f"/api/v1/agent/replicas/{placed[0]['replica_id']}/state"
            assert node.put(path, json=ready).status_code == 200
            gateway = fleet.start_gateway()
            with NodeTunnel(gateway.tunnel_url, node) as tunnel:
                tunnel.engines[placed[0]["replica_id"]] = upstream.server.url
                wait_until(lambda: gateway.ready_replicas("paced") == 1, 30, "replica routable")
                _check_sharing(gateway, keys, upstream)
        finally:
            stop.set()
            node.close()


def _check_sharing(gateway: LiveGateway, keys: dict[str, str], upstream: PacedUpstream) -> None:
    def post(customer: str, **extra: object) -> httpx.Response:
        return httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={**CHAT, **extra},
            headers={"authorization": f"Bearer {keys[customer]}"},
            timeout=60,
        )

    # Acme idle: Globex is served on Acme's replica, the only one.
    assert post("globex").status_code == 200

    # Acme busy with a stream: Globex's request waits for it to end, then is served there.
    streaming = threading.Event()

    def acme_streams() -> None:
        with httpx.stream(
            "POST",
            f"{gateway.url}/v1/chat/completions",
            json={**CHAT, "stream": True},
            headers={"authorization": f"Bearer {keys['acme']}"},
            timeout=60,
        ) as answer:
            assert answer.status_code == 200
            for _ in answer.iter_bytes():
                streaming.set()

    acme = threading.Thread(target=acme_streams)
    acme.start()
    assert streaming.wait(30), "acme's stream began"
    globex = post("globex")
    acme.join(60)
    assert globex.status_code == 200, globex.text
    # In the engine's own order: Globex's answer was made after Acme's stream was over (the
    # clients' clocks would race: Acme's thread may read its end after Globex's answer came).
    assert upstream.served[-2:] == ["stream", "answer"], "globex was served beside acme's request"
