"""A real `hashgrid agent` process running real llama.cpp engines for a real control plane."""

import functools
import json
import signal
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from hashgrid.client import HashgridClient
from hashgrid.contracts.api.access import TokenCreate
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.sites import SiteCreate

from support.live import AgentProcess, LiveGateway, LiveServer, wait_until


@pytest.fixture
def admin(server: LiveServer) -> Iterator[HashgridClient]:
    with server.client() as c:
        c.create_site(SiteCreate(name="local", region="us-south", country="US", power_mw=1.0))
        c.create_organization(OrganizationCreate(name="acme", kind="customer"))
        yield c


def _start_agent(server: LiveServer, admin: HashgridClient, home: Path) -> AgentProcess:
    return AgentProcess(server.url, home, admin.create_join_token("local").token, "rig-1")


def _ready_endpoint(admin: HashgridClient, deployment: str) -> str:
    def ready() -> str | None:
        d = admin.get_deployment(deployment)
        ready = [r.endpoint for r in d.replica_list if r.status == "ready"]
        return ready[0] if ready else None

    return str(wait_until(ready, 60, f"a ready replica of {deployment}"))


def _serves(endpoint: str) -> bool:
    try:
        return httpx.get(f"{endpoint}/v1/models", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_agent_serves_its_assignment_and_stops_it_when_unassigned(
    server: LiveServer, admin: HashgridClient, tiny_model: Path, tmp_path: Path
) -> None:
    agent = _start_agent(server, admin, tmp_path / "agent")
    try:
        node = wait_until(admin.list_nodes, 30, "the agent to join")[0]
        assert node.status == "ready"
        assert node.fingerprint.gpus == []
        assert node.fingerprint.gpu_error
        admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        admin.deploy(DeploymentCreate(model="tiny"))
        endpoint = _ready_endpoint(admin, "tiny")
        models = httpx.get(f"{endpoint}/v1/models", timeout=5).json()
        assert [m["id"] for m in models["data"]] == ["tiny"]

        admin.delete_deployment("tiny")
        wait_until(lambda: not _serves(endpoint), 20, "the engine to stop")
    finally:
        assert agent.terminate() == 0, agent.log()


def test_engine_that_cannot_start_is_reported_failed_with_its_reason(
    server: LiveServer, admin: HashgridClient, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF but not really a model")
    agent = _start_agent(server, admin, tmp_path / "agent")
    try:
        admin.add_model(
            ModelCreate(name="broken", source=str(broken), size_bytes=broken.stat().st_size)
        )
        admin.deploy(DeploymentCreate(model="broken"))
        failure = wait_until(
            lambda: admin.get_deployment("broken").recent_failures, 60, "a failure report"
        )[0]
        assert failure.reason is not None
        assert failure.reason.startswith("restart 1 in ")  # the agent tries again, in place
        assert "engine exited with code" in failure.reason
        assert "last log lines" in failure.reason  # the engine's own words, for the operator
        assert "replica failed" in agent.log()
    finally:
        assert agent.terminate() == 0, agent.log()


def test_killed_agent_is_lost_and_the_gateway_answers_503(
    server: LiveServer, admin: HashgridClient, tiny_model: Path, tmp_path: Path
) -> None:
    # A request for a model with no ready replica waits this long for one to come back.
    gateway = LiveGateway(
        server.url,
        admin.create_token(TokenCreate(name="gw", role="gateway")).token,
        tmp_path / "gw",
        cold_start_wait_s=1,
    )
    gateway.start()
    agent = _start_agent(server, admin, tmp_path / "agent")
    try:
        key = admin.create_key(KeyCreate(customer="acme")).key
        admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        admin.deploy(DeploymentCreate(model="tiny"))
        endpoint = _ready_endpoint(admin, "tiny")
        wait_until(lambda: gateway.ready_replicas("tiny") == 1, 10, "the gateway to route")
        body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        headers = {"authorization": f"Bearer {key}"}
        ok = httpx.post(
            f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=30
        )
        assert ok.status_code == 200

        agent.proc.send_signal(signal.SIGKILL)
        agent.proc.wait(10)
        wait_until(lambda: admin.list_nodes()[0].status == "lost", 10, "the node to be lost")
        # The engine outlives its agent, for the next agent to adopt or stop, but its replica
        # was lost with the node: no gateway routes to it.
        assert _serves(endpoint)
        wait_until(lambda: gateway.ready_replicas("tiny") == 0, 10, "the gateway to drop it")
        r = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=10)
        assert r.status_code == 503
        error = r.json()["error"]
        assert error["code"] == "no_ready_replica"
        assert "none became ready within 1 s" in error["message"]
        assert set(error) == {"message", "type", "param", "code"}
        assert admin.get_deployment("tiny").ready_replicas == 0
    finally:
        gateway.stop()
        if agent.proc.poll() is None:
            agent.kill()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_restarted_agent_rejoins_without_a_token(
    server: LiveServer, admin: HashgridClient, tiny_model: Path, tmp_path: Path
) -> None:
    admin.add_model(
        ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
    )
    admin.deploy(DeploymentCreate(model="tiny"))
    first = _start_agent(server, admin, tmp_path / "agent")
    old_endpoint = _ready_endpoint(admin, "tiny")
    assert first.terminate() == 0, first.log()
    assert not _serves(old_endpoint)

    again = AgentProcess(server.url, tmp_path / "agent", None, "rig-1")
    try:
        _ready_endpoint(admin, "tiny")
        nodes = admin.list_nodes()
        assert len(nodes) == 1, "a restart must not register a second node"
        assert nodes[0].status == "ready"
    finally:
        assert again.terminate() == 0, again.log()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_agent_downloads_a_model_from_a_url_and_serves_it(
    server: LiveServer, admin: HashgridClient, tiny_model: Path, tmp_path: Path
) -> None:
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tiny_model.parent))
    files = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=files.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{files.server_address[1]}/{tiny_model.name}"
    agent = _start_agent(server, admin, tmp_path / "agent")
    try:
        admin.add_model(
            ModelCreate(name="remote", source=url, size_bytes=tiny_model.stat().st_size)
        )
        admin.deploy(DeploymentCreate(model="remote"))
        endpoint = _ready_endpoint(admin, "remote")
        assert _serves(endpoint)
        held = list((tmp_path / "agent" / "store" / "models").rglob("*.gguf"))
        assert [p.read_bytes() == tiny_model.read_bytes() for p in held] == [True]
    finally:
        files.shutdown()
        assert agent.terminate() == 0, agent.log()


def test_a_second_request_waits_for_the_first_instead_of_cutting_it_short(
    server: LiveServer, admin: HashgridClient, tiny_model: Path, tmp_path: Path
) -> None:
    agent = _start_agent(server, admin, tmp_path / "agent")
    try:
        admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        admin.deploy(DeploymentCreate(model="tiny"))
        endpoint = _ready_endpoint(admin, "tiny")
        first_body = {"model": "tiny", "prompt": "a", "max_tokens": 1500, "stream": True}
        second: list[httpx.Response] = []
        with httpx.stream("POST", f"{endpoint}/v1/completions", json=first_body, timeout=60) as r:
            chunks = r.iter_lines()
            next(line for line in chunks if line.startswith("data: "))  # generating now
            other = threading.Thread(
                target=lambda: second.append(
                    httpx.post(
                        f"{endpoint}/v1/completions",
                        json={"model": "tiny", "prompt": "b", "max_tokens": 4},
                        timeout=60,
                    )
                )
            )
            other.start()
            events = [line for line in chunks if line.startswith("data: {")]
        other.join(60)
        usage = json.loads(events[-1][len("data: ") :])["usage"]
        assert usage["completion_tokens"] == 1500, "the first stream was cut short"
        assert second[0].status_code == 200
    finally:
        assert agent.terminate() == 0, agent.log()
