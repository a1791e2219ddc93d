"""The control plane's /metrics, what a heartbeat writes, and what wakes a held long poll."""

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hashgrid.agent.fingerprint import collect
from hashgrid.contracts.agent import PROTOCOL_HEADER
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.sites import SiteCreate

from support.admission import admit
from support.live import LiveServer, server_settings, wait_until
from support.metrics import db_writes as _writes
from support.metrics import server_metrics as _metrics

HEARTBEAT = "/api/v1/agent/heartbeat"
ASSIGNMENTS = "/api/v1/agent/assignments"


def _joined_node(server: LiveServer) -> tuple[dict[str, Any], httpx.Client]:
    with server.client() as c:
        c.create_site(SiteCreate(name="tx-west", region="us-south", country="US", power_mw=10.0))
        token = c.create_join_token("tx-west").token
    body = {"join_token": token, "name": "rig-1", "fingerprint": collect().model_dump(mode="json")}
    with server.http(token=None) as http:
        joined: dict[str, Any] = http.post("/api/v1/agent/join", json=body).json()
    node = server.http(token=joined["credential"])
    node.headers[PROTOCOL_HEADER] = "1"
    admit(node, body["fingerprint"])
    return joined, node


def test_metrics_expose_writes_heartbeats_and_nodes(server: LiveServer) -> None:
    before = _metrics(server)
    for name in ("insert", "update", "delete"):
        assert f'hashgrid_db_writes_total{{statement="{name}"}}' in before
    assert before["hashgrid_heartbeats_total"] == 0
    assert before["hashgrid_heartbeat_seconds_count"] == 0
    assert before['hashgrid_nodes{status="ready"}'] == 0
    assert before['hashgrid_db_writes_total{statement="insert"}'] > 0  # bootstrap's admin token

    _, node = _joined_node(server)
    with node:
        for _ in range(3):
            assert node.post(HEARTBEAT, json={}).status_code == 200
    after = _metrics(server)
    assert after["hashgrid_heartbeats_total"] == 3
    assert after["hashgrid_heartbeat_seconds_count"] == 3
    assert after['hashgrid_heartbeat_seconds_bucket{le="+Inf"}'] == 3
    assert after["hashgrid_heartbeat_seconds_sum"] > 0
    assert after['hashgrid_nodes{status="ready"}'] == 1
    assert after['hashgrid_nodes{status="lost"}'] == 0
    assert _writes(server) > sum(
        v for k, v in before.items() if k.startswith("hashgrid_db_writes_total")
    )  # the join wrote


def test_a_heartbeat_that_changes_nothing_writes_nothing(server: LiveServer) -> None:
    joined, node = _joined_node(server)
    fingerprint = collect().model_dump(mode="json")
    with node:
        assert node.post(HEARTBEAT, json={"fingerprint": fingerprint}).status_code == 200
        writes = _writes(server)
        beats = _metrics(server)["hashgrid_heartbeats_total"]
        for i in range(20):
            body = {"fingerprint": fingerprint} if i % 5 == 0 else {}
            assert node.post(HEARTBEAT, json=body).status_code == 200
        assert _writes(server) == writes
        assert _metrics(server)["hashgrid_heartbeats_total"] == beats + 20

        # A fingerprint that changed is stored: one write, and none for the same one again.
        fingerprint["cpu_count"] += 1
        assert node.post(HEARTBEAT, json={"fingerprint": fingerprint}).status_code == 200
        changed = _writes(server)
        assert changed > writes
        assert node.post(HEARTBEAT, json={"fingerprint": fingerprint}).status_code == 200
        assert _writes(server) == changed
    with server.client() as admin:
        assert admin.get_node(joined["node_id"]).fingerprint.cpu_count == fingerprint["cpu_count"]


def test_a_status_change_writes(server: LiveServer) -> None:
    joined, node = _joined_node(server)
    with node, server.client() as admin:
        assert node.post(HEARTBEAT, json={}).status_code == 200
        writes = _writes(server)
        # It stops beating: the liveness reconciler marks it lost after the TTL, and writes.
        wait_until(lambda: admin.get_node(joined["node_id"]).status == "lost", 10, "node lost")
        lost = _writes(server)
        assert lost > writes
        assert _metrics(server)['hashgrid_nodes{status="lost"}'] == 1
        # Its next beat brings it back: a write, and the in-memory view follows.
        assert node.post(HEARTBEAT, json={}).status_code == 200
        back = _writes(server)
        assert back > lost
        assert admin.get_node(joined["node_id"]).status == "ready"
        after = _metrics(server)
        assert after['hashgrid_nodes{status="ready"}'] == 1
        assert after['hashgrid_nodes{status="lost"}'] == 0
        assert node.post(HEARTBEAT, json={}).status_code == 200
        assert _writes(server) == back


@pytest.fixture
def unjittered(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """A server that holds each poll for its whole wait, so a test can tell a wake-up from the
    end of the wait."""
    with LiveServer(server_settings(tmp_path / "home", database_url, long_poll_jitter=0.0)) as live:
        yield live


def test_a_held_poll_sleeps_through_changes_that_are_not_its_nodes(
    unjittered: LiveServer, tiny_model: Path
) -> None:
    server = unjittered
    joined, node = _joined_node(server)
    with node, server.client() as admin:
        first = node.get(ASSIGNMENTS, params={"after": 0}).json()
        answers: list[tuple[float, dict[str, Any]]] = []

        def poll() -> None:
            started = time.monotonic()
            params = {"after": first["revision"], "wait": 2}
            got = node.get(ASSIGNMENTS, params=params).json()
            answers.append((time.monotonic() - started, got))

        poller = threading.Thread(target=poll)
        poller.start()
        time.sleep(0.3)
        admin.create_site(
            SiteCreate(name="elsewhere", region="eu-north", country="SE", power_mw=1.0)
        )
        other = admin.create_join_token("elsewhere").token  # a change, but none of this node's
        body = {
            "join_token": other,
            "name": "rig-2",
            "fingerprint": collect().model_dump(mode="json"),
        }
        with server.http(token=None) as http:
            assert http.post("/api/v1/agent/join", json=body).status_code == 200
        poller.join(10)
        held, answer = answers[0]
        assert held >= 1.9, "a change on another node ended this node's poll"  # made at 0.3 s
        assert answer["assignments"] == []
        assert answer["revision"] > first["revision"]

        # Its own replica ends the poll at once.
        poller = threading.Thread(target=poll)
        first = answer
        poller.start()
        time.sleep(0.3)
        admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        admin.deploy(DeploymentCreate(model="tiny", regions=["us-south"]))
        poller.join(10)
        held, answer = answers[1]
        assert held < 1.9  # the deployment came at 0.3 s
        assert len(answer["assignments"]) == 1
        assert joined["node_id"] == admin.get_deployment("tiny").replica_list[0].node_id
