"""A deployment's only replica moving under a request: the gateway's view still offers the old
replica while its agent has already stopped the engine (a drain, a curtailment, a failover).
The request that meets the refused connection has no other replica to retry on, so it waits,
as for a cold start, for the replacement, and is answered from there."""

import threading
from contextlib import ExitStack
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hashgrid.common.net import free_port
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.sites import SiteCreate

from support.live import LiveFleet, ThreadedServer, wait_until
from support.tunnel import NodeTunnel

ANSWER = {
    "id": "chatcmpl-moved",
    "object": "chat.completion",
    "created": 0,
    "model": "tiny",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


async def _chat(_: Request) -> Response:
    return JSONResponse(ANSWER)


def _serve(node: httpx.Client, tunnel: NodeTunnel, endpoint: str) -> str:
    """Wait for a replica on `node` and report it ready, served down `tunnel` from `endpoint`;
    its id."""

    def placed() -> list[str]:
        got = node.get("/api/v1/agent/assignments").json()["assignments"]
        return [a["replica_id"] for a in got]

    replica: str = wait_until(placed, 20, "a replica placed")[0]
    tunnel.engines[replica] = endpoint
    ready = {"status": "ready", "endpoint": endpoint}
    assert node.put(f"/api/v1/agent/replicas/{replica}/state", json=ready).status_code == 200
    return replica


def test_a_request_meeting_its_only_replica_stopped_is_answered_by_the_replacement(
    tiny_model: Path, tmp_path: Path
) -> None:
    engine = ThreadedServer(
        Starlette(routes=[Route("/v1/chat/completions", _chat, methods=["POST"])])
    )
    engine.start()
    nodes: list[httpx.Client] = []
    tunnels = ExitStack()
    try:
        with LiveFleet(tmp_path) as fleet:
            admin, server = fleet.admin, fleet.server
            admin.create_site(
                SiteCreate(name="local", region="us-south", country="US", power_mw=1.0)
            )
            admin.create_organization(OrganizationCreate(name="acme", kind="customer"))
            key = admin.create_key(KeyCreate(customer="acme")).key
            admin.add_model(
                ModelCreate(
                    name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size
                )
            )
            admin.deploy(DeploymentCreate(model="tiny", replicas=1))
            nodes.append(server.join_node("local", "old"))
            routed = fleet.start_gateway()
            old_tunnel = tunnels.enter_context(NodeTunnel(routed.tunnel_url, nodes[0]))
            # Its engine is already stopped: nothing listens on the port it was reported on.
            old = _serve(nodes[0], old_tunnel, f"http://127.0.0.1:{free_port()}")
            wait_until(lambda: routed.ready_replicas("tiny") == 1, 30, "the old replica routable")

            answers: list[httpx.Response] = []
            request = threading.Thread(
                target=lambda: answers.append(
                    httpx.post(
                        f"{routed.url}/v1/chat/completions",
                        json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}]},
                        headers={"authorization": f"Bearer {key}"},
                        timeout=60,
                    )
                )
            )
            request.start()
            # The request met the refused connection (passive health ejected the replica)...
            wait_until(lambda: old in routed.health()["ejected"], 20, "the refusal")
            # ...and the replica moves: its node drains, a new one takes it and becomes ready.
            nodes.append(server.join_node("local", "new"))
            new_tunnel = tunnels.enter_context(NodeTunnel(routed.tunnel_url, nodes[1]))
            admin.drain(nodes[0].headers["x-node-id"])
            new = _serve(nodes[1], new_tunnel, engine.url)
            assert new != old
            request.join(60)
            (answer,) = answers
            assert answer.status_code == 200, answer.text
            assert answer.json()["id"] == ANSWER["id"]
    finally:
        tunnels.close()
        for node in nodes:
            node.close()
        engine.stop()
