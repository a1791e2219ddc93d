"""Serving down node tunnels: a real control plane and gateway, nodes that speak the agent
protocol and serve their replicas down real tunnels (`agent/tunnel.py`) from engines of the
tests' own, so that a tunnel can be cut at a known moment."""

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.sites import SiteCreate

from support.live import LiveFleet, LiveGateway, ThreadedServer, beating, wait_until
from support.tunnel import NodeTunnel
from support.upstream import PacedUpstream

CHAT = {"model": "paced", "messages": [{"role": "user", "content": "hi"}]}


class Hanging:
    """An engine that takes requests and never answers: `arrived` is set once one came."""

    def __init__(self) -> None:
        self.arrived = threading.Event()

        async def chat(_: Request) -> Response:
            self.arrived.set()
            await asyncio.sleep(3600)
            return Response(status_code=500)

        routes = [Route("/v1/chat/completions", chat, methods=["POST"])]
        self.server = ThreadedServer(Starlette(routes=routes))


class Fleet:
    """A fleet with a gateway, the model `paced` and a key; nodes joined by hand."""

    def __init__(self, fleet: LiveFleet, stack: ExitStack) -> None:
        self.fleet = fleet
        self._stack = stack
        self._stop = threading.Event()
        stack.callback(self._stop.set)
        admin = fleet.admin
        admin.create_site(SiteCreate(name="local", region="us-south", country="US", power_mw=1.0))
        admin.create_organization(OrganizationCreate(name="acme", kind="customer"))
        self.key = admin.create_key(KeyCreate(customer="acme")).key
        admin.add_model(ModelCreate(name="paced", source="/nowhere/paced.gguf", size_bytes=1000))
        self.gateway: LiveGateway = fleet.start_gateway()

    def node(self, name: str) -> tuple[httpx.Client, NodeTunnel]:
        node = self.fleet.server.join_node("local", name)
        self._stack.callback(node.close)
        beating(node, self._stop)
        return node, NodeTunnel(self.gateway.tunnel_url, node)

    def post(self, **extra: object) -> httpx.Response:
        return httpx.post(
            f"{self.gateway.url}/v1/chat/completions",
            json={**CHAT, **extra},
            headers={"authorization": f"Bearer {self.key}"},
            timeout=60,
        )


def serve(node: httpx.Client, tunnel: NodeTunnel, endpoint: str, count: int = 1) -> list[str]:
    """Wait for `count` replicas placed on `node`; serve them down `tunnel` from `endpoint` and
    report them ready; their ids."""

    def placed() -> list[str]:
        got = node.get("/api/v1/agent/assignments").json()["assignments"]
        return [a["replica_id"] for a in got] if len(got) >= count else []

    replicas: list[str] = wait_until(placed, 20, "replicas placed")
    for replica in replicas:
        tunnel.engines[replica] = endpoint
        ready = {"status": "ready", "endpoint": "http://127.0.0.1:1"}  # never dialled
        assert node.put(f"/api/v1/agent/replicas/{replica}/state", json=ready).status_code == 200
    return replicas


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with LiveFleet(tmp_path) as live, ExitStack() as stack:
        yield Fleet(live, stack)


def test_a_replica_is_routable_only_while_its_node_has_a_tunnel_to_the_gateway(
    fleet: Fleet,
) -> None:
    engine = PacedUpstream(tokens=3)
    engine.server.start()
    try:
        fleet.fleet.admin.deploy(DeploymentCreate(model="paced", replicas=1))
        node, tunnel = fleet.node("n1")
        serve(node, tunnel, engine.server.url)
        # Ready in the control plane's view, but this gateway cannot reach it yet.
        wait_until(lambda: fleet.gateway.health()["revision"] > 0, 10, "a view")
        assert fleet.gateway.ready_replicas("paced") == 0
        with tunnel:
            wait_until(lambda: fleet.gateway.ready_replicas("paced") == 1, 20, "routable")
            answer = fleet.post()
            assert answer.status_code == 200, answer.text
            assert answer.json()["choices"][0]["message"]["content"] == "t0 t1 t2 "
        wait_until(lambda: fleet.gateway.ready_replicas("paced") == 0, 20, "unroutable again")
    finally:
        engine.server.stop()


def test_a_tunnel_cut_before_the_first_byte_has_the_request_answered_by_another_replica(
    fleet: Fleet,
) -> None:
    hanging, engine = Hanging(), PacedUpstream(tokens=2)
    hanging.server.start()
    engine.server.start()
    try:
        first, first_tunnel = fleet.node("n1")
        second, second_tunnel = fleet.node("n2")
        # Spread: one replica per node (placement spreads a deployment's replicas).
        fleet.fleet.admin.deploy(DeploymentCreate(model="paced", replicas=2))
        serve(first, first_tunnel, hanging.server.url)
        serve(second, second_tunnel, engine.server.url)
        with ExitStack() as tunnels:
            tunnels.enter_context(first_tunnel)
            wait_until(lambda: fleet.gateway.ready_replicas("paced") == 1, 20, "n1 routable")
            answers: list[httpx.Response] = []
            asking = threading.Thread(target=lambda: answers.append(fleet.post()))
            asking.start()
            assert hanging.arrived.wait(20), "the request never reached n1's engine"
            tunnels.enter_context(second_tunnel)
            wait_until(lambda: fleet.gateway.ready_replicas("paced") == 2, 20, "n2 routable")
            first_tunnel.close()  # cut while n1's engine has not answered a byte
            asking.join(30)
        (answer,) = answers
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == "t0 t1 "
        assert engine.served == ["answer"]
    finally:
        hanging.server.stop()
        engine.server.stop()


def test_a_tunnel_cut_mid_stream_ends_it_with_an_error_and_bills_what_was_delivered(
    fleet: Fleet,
) -> None:
    engine = PacedUpstream(tokens=50, pace_s=0.1)
    engine.server.start()
    try:
        fleet.fleet.admin.deploy(DeploymentCreate(model="paced", replicas=1))
        node, tunnel = fleet.node("n1")
        serve(node, tunnel, engine.server.url)
        events: list[bytes] = []
        with tunnel:
            wait_until(lambda: fleet.gateway.ready_replicas("paced") == 1, 20, "routable")
            with httpx.stream(
                "POST",
                f"{fleet.gateway.url}/v1/chat/completions",
                json={**CHAT, "stream": True},
                headers={"authorization": f"Bearer {fleet.key}"},
                timeout=60,
            ) as stream:
                assert stream.status_code == 200
                for line in stream.iter_lines():
                    if line.startswith("data: "):
                        events.append(line.encode())
                    if len(events) == 5:
                        tunnel.close()
        last = json.loads(events[-1].removeprefix(b"data: "))
        assert last["error"]["type"] == "upstream_error", last
        chunks = [json.loads(e.removeprefix(b"data: ")) for e in events[:-1]]
        delivered = sum(
            1 for c in chunks for choice in c["choices"] if choice["delta"].get("content")
        )
        assert 3 <= delivered < 50

        def record() -> object:
            records = fleet.fleet.admin.usage()
            return records[0] if records else None

        stored = wait_until(record, 20, "the stream's usage record")
        assert stored.status_code == 502
        assert stored.completion_tokens == delivered
    finally:
        engine.server.stop()


def test_a_revoked_node_loses_its_tunnel_and_cannot_open_another(fleet: Fleet) -> None:
    node, tunnel = fleet.node("n1")
    with tunnel:
        tunnel.wait_connected()
        with fleet.fleet.server.http() as admin:
            revoked = admin.post(f"/api/v1/nodes/{node.headers['x-node-id']}/revoke")
            assert revoked.status_code == 200, revoked.text
        wait_until(lambda: not tunnel.connected, 20, "the tunnel closed")
        wait_until(lambda: tunnel.refusals > 0, 20, "a refused redial")
        assert not tunnel.connected


def test_a_gateway_whose_token_is_not_valid_is_never_given_to_nodes(fleet: Fleet) -> None:
    """Nodes dial only the gateways the control plane lists: those that report with a valid
    gateway token. A gateway without one gets no view and no node ever dials it."""
    node, _ = fleet.node("n1")
    rogue = LiveGateway(fleet.fleet.server.url, "hg_gw_forged", fleet.fleet.tmp_path / "rogue")
    rogue.start()
    try:
        good = fleet.gateway.tunnel_url

        def listed() -> list[str]:
            ack = node.post("/api/v1/agent/heartbeat", json={}).json()
            return list(ack["gateways"])

        wait_until(lambda: listed() == [good], 20, "the good gateway listed")
        for _ in range(5):  # the rogue reports every second; none is taken
            assert listed() == [good]
            threading.Event().wait(0.3)
        assert rogue.health()["revision"] == 0
    finally:
        rogue.stop()
