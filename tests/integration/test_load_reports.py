"""What heartbeats report beyond liveness, on SQLite and PostgreSQL: each ready engine's load
(in memory: on the replicas API, the gateway view and /metrics) and the models a node's store
holds (stored on the node, written only when they change)."""

import functools
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from hashgrid.agent.fingerprint import collect
from hashgrid.agent.heartbeat import FINGERPRINT_EVERY
from hashgrid.client import HashgridClient
from hashgrid.contracts.agent import PROTOCOL_HEADER
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.sites import SiteCreate

from support.admission import admit
from support.live import ADMIN_TOKEN, AgentProcess, LiveServer, server_settings, wait_until
from support.metrics import db_writes, heartbeats, server_metrics

HEARTBEAT = "/api/v1/agent/heartbeat"
ASSIGNMENTS = "/api/v1/agent/assignments"
VIEW = "/api/v1/gateway/view"


@pytest.fixture
def admin(server: LiveServer) -> Iterator[HashgridClient]:
    with server.client() as c:
        c.create_site(SiteCreate(name="local", region="us-south", country="US", power_mw=1.0))
        yield c


@pytest.fixture
def model_url(tiny_model: Path) -> Iterator[str]:
    """The tiny model served over HTTP, so the agent's store downloads and holds it."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tiny_model.parent))
    files = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=files.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{files.server_address[1]}/{tiny_model.name}"
    finally:
        files.shutdown()


def _join(server: LiveServer, admin: HashgridClient, name: str) -> tuple[str, httpx.Client]:
    """A node joined by hand: its id, and a client speaking the agent protocol as it."""
    body = {
        "join_token": admin.create_join_token("local").token,
        "name": name,
        "fingerprint": collect().model_dump(mode="json"),
    }
    with server.http(token=None) as http:
        joined = http.post("/api/v1/agent/join", json=body).json()
    node = server.http(token=joined["credential"])
    node.headers[PROTOCOL_HEADER] = "1"
    admit(node, body["fingerprint"])
    return str(joined["node_id"]), node


def _ready_replica(node: httpx.Client) -> str:
    """Wait for the node's replica, and report it ready as an agent would; its id."""

    def assigned() -> str | None:
        body = node.get(ASSIGNMENTS, params={"after": 0}).json()
        return str(body["assignments"][0]["replica_id"]) if body["assignments"] else None

    replica: str = wait_until(assigned, 15, "a replica to be assigned")
    state = f"/api/v1/agent/replicas/{replica}/state"
    assert node.put(state, json={"status": "starting"}).status_code == 200
    ready = {"status": "ready", "endpoint": "http://127.0.0.1:9"}
    assert node.put(state, json=ready).status_code == 200
    return replica


def _replica(server: LiveServer, replica_id: str) -> dict[str, Any]:
    with server.http() as http:
        listed: list[dict[str, Any]] = http.get("/api/v1/replicas").json()
    return next(r for r in listed if r["id"] == replica_id)


def _routed(server: LiveServer, replica_id: str, after: int = 0) -> tuple[int, dict[str, Any]]:
    """The gateway view's revision and its entry for `replica_id` (asked as a gateway would)."""
    with server.http() as http:
        view = http.get(VIEW, params={"after": after, "wait": 0}).json()
    entry = next(r for m in view["models"] for r in m["replicas"] if r["replica_id"] == replica_id)
    return int(view["revision"]), entry


def test_an_agent_reports_its_holdings_and_its_llamacpp_replica_and_steady_beats_write_nothing(
    server: LiveServer, admin: HashgridClient, model_url: str, tiny_model: Path, tmp_path: Path
) -> None:
    token = admin.create_join_token("local").token
    agent = AgentProcess(server.url, tmp_path / "agent", token, "rig-1")
    try:
        node = wait_until(admin.list_nodes, 30, "the agent to join")[0]
        admin.add_model(
            ModelCreate(name="tiny", source=model_url, size_bytes=tiny_model.stat().st_size)
        )
        admin.deploy(DeploymentCreate(model="tiny"))

        def ready() -> str | None:
            replicas = admin.get_deployment("tiny").replica_list
            return replicas[0].id if replicas and replicas[0].status == "ready" else None

        replica_id = wait_until(ready, 60, "a ready replica")
        held = wait_until(lambda: admin.get_node(node.id).holdings, 10, "the node's holdings")
        assert [(h.source, h.size_bytes) for h in held] == [(model_url, tiny_model.stat().st_size)]
        assert len(held[0].sha256) == 64
        with server.http() as http:
            listed = http.get("/api/v1/nodes").json()
        assert [len(n["holdings"]) for n in listed] == [1]

        # llama.cpp has no metrics: its replica is reported, with no figures.
        load = wait_until(lambda: _replica(server, replica_id)["load"], 10, "a load report")
        assert (load["running"], load["waiting"], load["kv_cache_usage"]) == (None, None, None)
        assert load["reported_at"]
        _, routed = _routed(server, replica_id)
        assert (routed["running"], routed["waiting"]) == (None, None)

        # The beat after the engine became ready carried its store's last use; let it land.
        start = heartbeats(server)
        wait_until(lambda: heartbeats(server) >= start + 3, 10, "three beats")
        writes = db_writes(server)
        settled = admin.get_node(node.id).holdings
        # Steady beats, including one that carries the fingerprint and the holdings again.
        start = heartbeats(server)
        wait_until(
            lambda: heartbeats(server) >= start + FINGERPRINT_EVERY + 1, 30, "a fingerprint beat"
        )
        assert db_writes(server) == writes
        assert admin.get_node(node.id).holdings == settled
    finally:
        assert agent.terminate() == 0, agent.log()


def test_reported_loads_show_on_the_api_the_gateway_view_and_metrics_without_a_new_revision(
    server: LiveServer, admin: HashgridClient, tiny_model: Path
) -> None:
    node_id, node = _join(server, admin, "rig-1")
    with node:
        admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        admin.deploy(DeploymentCreate(model="tiny"))
        replica_id = _ready_replica(node)
        revision, routed = _routed(server, replica_id)
        assert (routed["running"], routed["waiting"], routed["kv_cache_usage"]) == (None,) * 3

        writes = db_writes(server)
        load = {"replica_id": replica_id, "running": 3, "waiting": 2, "kv_cache_usage": 0.5}
        assert node.post(HEARTBEAT, json={"replicas": [load]}).status_code == 200
        assert db_writes(server) == writes  # loads live in memory

        shown = _replica(server, replica_id)["load"]
        assert (shown["running"], shown["waiting"], shown["kv_cache_usage"]) == (3, 2, 0.5)
        deployment = admin.get_deployment("tiny")
        assert deployment.replica_list[0].load is not None
        assert deployment.replica_list[0].load.running == 3
        # A poll at the current revision answers when its wait ends, with the new load.
        again, routed = _routed(server, replica_id, after=revision)
        assert again == revision
        assert (routed["running"], routed["waiting"], routed["kv_cache_usage"]) == (3, 2, 0.5)
        labels = f'node="{node_id}",replica="{replica_id}"'
        metrics = server_metrics(server)
        assert metrics[f'hashgrid_replica_requests{{{labels},state="running"}}'] == 3
        assert metrics[f'hashgrid_replica_requests{{{labels},state="waiting"}}'] == 2
        assert metrics[f"hashgrid_replica_kv_cache_usage{{{labels}}}"] == 0.5

        # A beat without the replica (its engine stopped serving) takes the load away.
        assert node.post(HEARTBEAT, json={"replicas": []}).status_code == 200
        assert _replica(server, replica_id)["load"] is None

        # A report the node stops sending goes stale within a few heartbeat intervals.
        assert node.post(HEARTBEAT, json={"replicas": [load]}).status_code == 200
        assert _replica(server, replica_id)["load"] is not None
        wait_until(lambda: _replica(server, replica_id)["load"] is None, 10, "a stale load")
        assert _routed(server, replica_id)[1]["running"] is None


def test_a_node_cannot_report_load_for_another_nodes_replica(
    server: LiveServer, admin: HashgridClient, tiny_model: Path
) -> None:
    """The report is accepted with the beat (the beat keeps the node alive) and never read."""
    _, owner = _join(server, admin, "rig-1")
    with owner:
        admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        admin.deploy(DeploymentCreate(model="tiny"))
        replica_id = _ready_replica(owner)
        intruder_id, intruder = _join(server, admin, "rig-2")
        with intruder:
            forged = {"replica_id": replica_id, "running": 99, "waiting": 99}
            assert intruder.post(HEARTBEAT, json={"replicas": [forged]}).status_code == 200
            assert _replica(server, replica_id)["load"] is None
            assert _routed(server, replica_id)[1]["running"] is None

            honest = {"replica_id": replica_id, "running": 1, "waiting": 0}
            assert owner.post(HEARTBEAT, json={"replicas": [honest]}).status_code == 200
            assert intruder.post(HEARTBEAT, json={"replicas": [forged]}).status_code == 200
            assert _replica(server, replica_id)["load"]["running"] == 1
            assert _routed(server, replica_id)[1]["running"] == 1
            assert admin.get_node(intruder_id).status == "ready"


def test_holdings_are_stored_when_they_change_and_only_then(
    server: LiveServer, admin: HashgridClient
) -> None:
    node_id, node = _join(server, admin, "rig-1")
    held = [
        {
            "source": "hf://org/repo/model.gguf",
            "size_bytes": 1234,
            "sha256": "ab" * 32,
            "last_used": "2025-01-02T03:04:05Z",
        }
    ]
    with node:
        assert admin.get_node(node_id).holdings is None  # never reported
        assert node.post(HEARTBEAT, json={}).status_code == 200
        writes = db_writes(server)
        assert node.post(HEARTBEAT, json={"holdings": held}).status_code == 200
        stored = db_writes(server)
        assert stored > writes
        got = admin.get_node(node_id).holdings
        assert got is not None
        assert [(h.source, h.size_bytes, h.sha256) for h in got] == [
            ("hf://org/repo/model.gguf", 1234, "ab" * 32)
        ]
        for body in ({"holdings": held}, {}, {"holdings": held}):
            assert node.post(HEARTBEAT, json=body).status_code == 200
        assert db_writes(server) == stored

        assert node.post(HEARTBEAT, json={"holdings": []}).status_code == 200  # all evicted
        assert db_writes(server) > stored
        assert admin.get_node(node_id).holdings == []


def test_a_restarted_server_relearns_holdings_without_writing_them_again(
    database_url: str, tmp_path: Path
) -> None:
    settings = server_settings(tmp_path / "home", database_url)
    held = [
        {
            "source": "http://models/m.gguf",
            "size_bytes": 10,
            "sha256": "cd" * 32,
            "last_used": "2025-01-02T03:04:05Z",
        }
    ]
    with LiveServer(settings) as first:
        with first.client() as admin:
            admin.create_site(
                SiteCreate(name="local", region="us-south", country="US", power_mw=1.0)
            )
            node_id, node = _join(first, admin, "rig-1")
        with node:
            assert node.post(HEARTBEAT, json={"holdings": held}).status_code == 200
            credential = node.headers["authorization"]
    with LiveServer(settings) as second:
        with second.http(token=None) as node:
            node.headers.update({"authorization": credential, PROTOCOL_HEADER: "1"})
            assert node.post(HEARTBEAT, json={}).status_code == 200
            writes = db_writes(second)
            assert node.post(HEARTBEAT, json={"holdings": held}).status_code == 200
            assert db_writes(second) == writes  # read, found equal, noted: no write
        with second.client() as admin:
            got = admin.get_node(node_id).holdings
        assert got is not None
        assert [h.source for h in got] == ["http://models/m.gguf"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the API is tested on both
def test_the_cli_shows_replica_loads_and_models_held(
    database_url: str, tmp_path: Path, tiny_model: Path
) -> None:
    # Long heartbeats: the report stays fresh while the commands start.
    settings = server_settings(tmp_path / "home", database_url, heartbeat_interval_s=30.0)
    with LiveServer(settings) as server:
        with server.client() as admin:
            admin.create_site(
                SiteCreate(name="local", region="us-south", country="US", power_mw=1.0)
            )
            _, node = _join(server, admin, "rig-1")
            admin.add_model(
                ModelCreate(
                    name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size
                )
            )
            admin.deploy(DeploymentCreate(model="tiny"))
        with node:
            replica_id = _ready_replica(node)
            load = {"replica_id": replica_id, "running": 3, "waiting": 2, "kv_cache_usage": 0.5}
            held = {
                "source": "http://models/m.gguf",
                "size_bytes": 10,
                "sha256": "cd" * 32,
                "last_used": "2025-01-02T03:04:05Z",
            }
            beat = {"replicas": [load], "holdings": [held]}
            assert node.post(HEARTBEAT, json=beat).status_code == 200
        env = {
            **os.environ,
            "HASHGRID_SERVER": server.url,
            "HASHGRID_TOKEN": ADMIN_TOKEN,
            "NO_COLOR": "1",
            "COLUMNS": "250",
        }
        shown = _cli(env, "deployments", "show", "tiny")
        assert "3 running, 2 waiting, KV 50%" in shown
        as_json = json.loads(_cli(env, "deployments", "show", "tiny", "--json"))
        assert as_json["replica_list"][0]["load"]["running"] == 3
        listed = _cli(env, "nodes", "list")
        assert "models held" in listed
        header = next(line for line in listed.splitlines() if "models held" in line)
        rig = next(line for line in listed.splitlines() if "rig-1" in line)
        columns = [cell.strip() for cell in re.split("[│┃]", header)]
        assert [cell.strip() for cell in rig.split("│")][columns.index("models held")] == "1"
        nodes = json.loads(_cli(env, "nodes", "list", "--json"))
        assert [h["source"] for h in nodes[0]["holdings"]] == ["http://models/m.gguf"]


def _cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "hashgrid", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout
