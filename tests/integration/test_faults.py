"""Faults: the control plane goes away and comes back while agents, engines and gateways run."""

from pathlib import Path

import httpx
import psutil

from support.live import AgentProcess, LiveGateway, LiveServer, server_settings, wait_until

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def _engines_of(agent: AgentProcess) -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process(agent.proc.pid).children(recursive=True)
        if "llamacpp_server" in " ".join(p.cmdline())
    ]


def test_engines_and_gateway_keep_serving_while_the_control_plane_is_away(
    tiny_model: Path, tmp_path: Path
) -> None:
    settings = server_settings(tmp_path / "server", f"sqlite+aiosqlite:///{tmp_path / 'db'}")
    server = LiveServer(settings)
    server.start()
    admin = server.client()
    admin.create_site("local", "us-south", "US", 1.0)
    admin.create_organization("acme", "customer")
    admin.add_model("tiny", str(tiny_model), tiny_model.stat().st_size)
    admin.deploy("tiny")
    key = admin.create_key("acme").key
    gateway = LiveGateway(server.url, admin.create_token("gw", "gateway").token, tmp_path / "gw")
    gateway.start()
    agent = AgentProcess(
        server.url, tmp_path / "agent", admin.create_join_token("local").token, "n"
    )
    headers = {"authorization": f"Bearer {key}"}
    try:
        wait_until(lambda: gateway.ready_replicas("tiny") == 1, 60, "a routable replica")
        engines = _engines_of(agent)
        assert len(engines) == 1
        admin.close()
        server.stop()

        # Away: the gateway routes from its last view, the engine serves, usage is spooled.
        for i in range(3):
            r = httpx.post(
                f"{gateway.url}/v1/chat/completions",
                json=CHAT,
                headers={**headers, "x-request-id": f"away-{i}"},
                timeout=30,
            )
            assert r.status_code == 200, r.text
        assert agent.proc.poll() is None

        back = LiveServer(settings, port=server.port)
        back.start()
        try:
            with back.client() as again:
                wait_until(
                    lambda: {"away-0", "away-1", "away-2"} <= {u.request_id for u in again.usage()},
                    30,
                    "the spooled usage to arrive",
                )
                assert len([u for u in again.usage() if u.request_id.startswith("away-")]) == 3
                wait_until(
                    lambda: again.list_nodes()[0].status == "ready", 30, "the node to beat again"
                )
                assert again.get_deployment("tiny").ready_replicas == 1
            # Re-synced, not restarted: the same single engine process.
            assert [p.pid for p in _engines_of(agent)] == [e.pid for e in engines]
        finally:
            back.stop()
    finally:
        gateway.stop()
        agent.terminate()
