"""The agent protocol against a real control plane, on SQLite and on PostgreSQL."""

import threading
import time
from pathlib import Path

import httpx
import pytest

from hashgrid.agent.fingerprint import collect
from hashgrid.contracts.agent import PROTOCOL_HEADER, GpuInfo
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.sites import SiteCreate

from support.admission import admit
from support.live import LiveServer, wait_until

PROBLEM = "application/problem+json"


def _join_token(server: LiveServer, site: str = "tx-west") -> str:
    with server.client() as c:
        c.create_site(SiteCreate(name=site, region="us-south", country="US", power_mw=10.0))
        return c.create_join_token(site).token


def _join(server: LiveServer, token: str, name: str = "rig-1") -> httpx.Response:
    body = {"join_token": token, "name": name, "fingerprint": collect().model_dump(mode="json")}
    with server.http(token=None) as http:
        return http.post("/api/v1/agent/join", json=body)


def _node_http(server: LiveServer, credential: str) -> httpx.Client:
    client = server.http(token=credential)
    client.headers[PROTOCOL_HEADER] = "1"
    return client


def test_wrong_join_token_is_refused_and_creates_nothing(server: LiveServer) -> None:
    _join_token(server)
    r = _join(server, "hg_join_not-a-real-token")
    assert r.status_code == 401
    assert r.headers["content-type"] == PROBLEM
    with server.client() as c:
        assert c.list_nodes() == []


def test_join_token_is_one_time(server: LiveServer) -> None:
    token = _join_token(server)
    assert _join(server, token).status_code == 200
    again = _join(server, token, name="rig-2")
    assert again.status_code == 401
    with server.client() as c:
        assert [n.name for n in c.list_nodes()] == ["rig-1"]


def test_join_heartbeat_assignment_and_replica_reports(
    server: LiveServer, tiny_model: Path
) -> None:
    joined = _join(server, _join_token(server)).json()
    assert joined["site"] == "tx-west"
    assert joined["credential"].startswith("hg_node_")
    with _node_http(server, joined["credential"]) as node, server.client() as admin:
        ack = node.post("/api/v1/agent/heartbeat", json={}).json()
        assert ack["node_id"] == joined["node_id"]
        admit(node, admin.get_node(joined["node_id"]).fingerprint.model_dump(mode="json"))
        first = node.get("/api/v1/agent/assignments", params={"after": 0}).json()
        assert first["assignments"] == []

        # Long polls held open, as an agent holds them, hear of the placement as soon as it lands.
        answers: list[dict[str, object]] = []

        def poll() -> None:
            revision = first["revision"]
            while not answers or not answers[-1]["assignments"]:
                params = {"after": revision, "wait": 20}
                answers.append(node.get("/api/v1/agent/assignments", params=params).json())
                revision = answers[-1]["revision"]

        poller = threading.Thread(target=poll)
        poller.start()
        time.sleep(0.3)
        admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        admin.deploy(DeploymentCreate(model="tiny"))
        poller.join(timeout=15)
        assert not poller.is_alive(), "the long poll was not answered when assignments changed"
        assert all(a["revision"] > first["revision"] for a in answers)
        assignments = answers[-1]["assignments"]
        assert isinstance(assignments, list)
        assert len(assignments) == 1
        assignment = assignments[0]
        assert assignment["model"]["source"] == str(tiny_model)
        assert assignment["model"]["name"] == "tiny"
        replica = assignment["replica_id"]

        state = f"/api/v1/agent/replicas/{replica}/state"
        assert node.put(state, json={"status": "starting"}).status_code == 200
        ready = {"status": "ready", "endpoint": "http://127.0.0.1:9"}
        assert node.put(state, json=ready).status_code == 200
        deployment = admin.get_deployment("tiny")
        assert deployment.ready_replicas == 1
        assert deployment.replica_list[0].endpoint == "http://127.0.0.1:9"
        with server.http() as http:
            listed = http.get("/api/v1/replicas", params={"deployment": "tiny"}).json()
            assert [(r["id"], r["status"]) for r in listed] == [(replica, "ready")]
            assert http.get("/api/v1/replicas", params={"status": "failed"}).json() == []
        back = node.put(state, json={"status": "starting"})
        assert back.status_code == 409  # ready cannot go back to starting
        assert back.headers["content-type"] == PROBLEM
        unknown = node.put("/api/v1/agent/replicas/nope/state", json={"status": "ready"})
        assert unknown.status_code == 404


def test_other_protocol_versions_are_refused(server: LiveServer) -> None:
    credential = _join(server, _join_token(server)).json()["credential"]
    with server.http(token=credential) as node:
        r = node.post("/api/v1/agent/heartbeat", json={}, headers={PROTOCOL_HEADER: "2"})
    assert r.status_code == 400
    assert "protocol 2" in r.json()["detail"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_node_that_stops_beating_is_lost_and_comes_back_when_it_beats(
    server: LiveServer,
) -> None:
    joined = _join(server, _join_token(server)).json()
    with server.client() as admin, _node_http(server, joined["credential"]) as node:
        assert admin.list_nodes()[0].status == "ready"
        lost = wait_until(
            lambda: admin.list_nodes()[0].status == "lost", 10, "the node to be marked lost"
        )
        assert lost
        node.post("/api/v1/agent/heartbeat", json={})
        assert admin.list_nodes()[0].status == "ready"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_moving_readings_in_a_heartbeat_do_not_rewrite_the_node(server: LiveServer) -> None:
    """Temperature, power and free memory change every beat; only real changes are stored."""
    joined = _join(server, _join_token(server)).json()
    fingerprint = collect()
    fingerprint.gpus = [
        GpuInfo(index=0, uuid="GPU-1", name="H100", memory_total_bytes=80 * 2**30,
                memory_free_bytes=70 * 2**30, temperature_c=40, power_draw_w=100.0),
    ]  # fmt: skip
    with _node_http(server, joined["credential"]) as node, server.client() as admin:
        node.post("/api/v1/agent/heartbeat", json={"fingerprint": fingerprint.model_dump()})
        first = admin.get_node(joined["node_id"])
        assert first.capacity_bytes == 80 * 2**30
        warmer = fingerprint.model_copy(deep=True)
        warmer.gpus[0].temperature_c = 71
        warmer.gpus[0].memory_free_bytes = 1
        warmer.memory_available_bytes += 1
        node.post("/api/v1/agent/heartbeat", json={"fingerprint": warmer.model_dump()})
        assert admin.get_node(joined["node_id"]).fingerprint.gpus[0].temperature_c == 40
        broken = warmer.model_copy(deep=True)
        broken.gpus[0].quarantined = True
        broken.gpus[0].quarantine_reason = "XID 79 (GPU has fallen off the bus)"
        node.post("/api/v1/agent/heartbeat", json={"fingerprint": broken.model_dump()})
        stored = admin.get_node(joined["node_id"])
        assert stored.fingerprint.gpus[0].quarantined
        assert stored.capacity_bytes == 0  # a quarantined GPU takes no replica
