"""What a node credential may do, and revoking and rotating one, on SQLite and on PostgreSQL."""

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hashgrid.agent import registration
from hashgrid.agent.control_plane import ControlPlane, Rejected
from hashgrid.agent.fingerprint import collect
from hashgrid.agent.settings import AgentSettings
from hashgrid.contracts.agent import PROTOCOL_HEADER
from hashgrid.contracts.api.access import TokenCreate
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.sites import SiteCreate
from hashgrid.server.auth import NodeCredentials

from support.admission import admit
from support.live import LiveServer, wait_until

HEARTBEAT = "/api/v1/agent/heartbeat"
ASSIGNMENTS = "/api/v1/agent/assignments"
ROTATE = "/api/v1/agent/rotate"


def _join_tokens(server: LiveServer, count: int = 1, site: str = "tx-west") -> list[str]:
    with server.client() as c:
        c.create_site(SiteCreate(name=site, region="us-south", country="US", power_mw=10.0))
        return [c.create_join_token(site).token for _ in range(count)]


def _join(server: LiveServer, token: str, name: str = "rig-1") -> dict[str, Any]:
    body = {"join_token": token, "name": name, "fingerprint": collect().model_dump(mode="json")}
    with server.http(token=None) as http:
        r = http.post("/api/v1/agent/join", json=body)
    assert r.status_code == 200, r.text
    joined: dict[str, Any] = r.json()
    admit(_node_http(server, joined["credential"]), body["fingerprint"])
    return joined


def _node_http(server: LiveServer, credential: str) -> httpx.Client:
    client = server.http(token=credential)
    client.headers[PROTOCOL_HEADER] = "1"
    return client


def _replica_on(server: LiveServer, node: httpx.Client) -> str:
    """Wait until the node's long poll hands it a replica; its id."""

    def assigned() -> str | None:
        body = node.get(ASSIGNMENTS, params={"after": 0}).json()
        return str(body["assignments"][0]["replica_id"]) if body["assignments"] else None

    replica: str = wait_until(assigned, 15, "a replica to be assigned")
    return replica


def test_a_revoked_credential_is_refused_at_once_and_its_node_is_lost(
    server: LiveServer, tiny_model: Path
) -> None:
    joined = _join(server, _join_tokens(server)[0])
    with _node_http(server, joined["credential"]) as node, server.client() as admin:
        assert node.post(HEARTBEAT, json={}).status_code == 200  # the credential is now cached
        admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        admin.deploy(DeploymentCreate(model="tiny"))
        replica = _replica_on(server, node)
        state = f"/api/v1/agent/replicas/{replica}/state"
        assert node.put(state, json={"status": "starting"}).status_code == 200

        with server.http() as http:
            r = http.post(f"/api/v1/nodes/{joined['node_name']}/revoke")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "lost"

        assert node.post(HEARTBEAT, json={}).status_code == 401
        assert node.get(ASSIGNMENTS, params={"after": 0}).status_code == 401
        assert node.put(state, json={"status": "ready"}).status_code == 401
        assert node.post(ROTATE).status_code == 401
        assert admin.get_node(joined["node_id"]).status == "lost"
        with server.http() as http:
            listed = http.get("/api/v1/replicas", params={"node": joined["node_id"]}).json()
        assert [(r["id"], r["status"]) for r in listed] == [(replica, "lost")]
        time.sleep(1.0)  # placement passes: a lost node gets nothing new, and stays lost
        assert admin.get_node(joined["node_id"]).status == "lost"
        assert node.post(HEARTBEAT, json={}).status_code == 401


def test_only_an_admin_may_revoke(server: LiveServer) -> None:
    """A node proves who it is (not 401) but may not revoke, itself or another (403)."""
    joined = _join(server, _join_tokens(server)[0])
    revoke = f"/api/v1/nodes/{joined['node_id']}/revoke"
    with _node_http(server, joined["credential"]) as node:
        assert node.post(revoke).status_code == 403
    with server.client() as admin:
        gateway = admin.create_token(TokenCreate(name="gw", role="gateway")).token
    with server.http(token=gateway) as http:
        assert http.post(revoke).status_code == 403
    with server.http() as http:
        assert http.post("/api/v1/nodes/no-such-node/revoke").status_code == 404
    with _node_http(server, joined["credential"]) as node:
        assert node.post(HEARTBEAT, json={}).status_code == 200


def test_rotate_gives_a_new_credential_and_the_old_one_stops_working(server: LiveServer) -> None:
    joined = _join(server, _join_tokens(server)[0])
    old = joined["credential"]
    with _node_http(server, old) as node:
        assert node.post(HEARTBEAT, json={}).status_code == 200  # cached before the rotation
        r = node.post(ROTATE)
        assert r.status_code == 200, r.text
        rotated = r.json()
        assert node.post(HEARTBEAT, json={}).status_code == 401
        assert node.get(ASSIGNMENTS, params={"after": 0}).status_code == 401
        assert node.post(ROTATE).status_code == 401  # an old credential cannot rotate again
    new = rotated["credential"]
    assert new != old
    assert new.startswith("hg_node_")
    assert (rotated["node_id"], rotated["node_name"], rotated["site"]) == (
        joined["node_id"],
        joined["node_name"],
        joined["site"],
    )
    with _node_http(server, new) as node:
        ack = node.post(HEARTBEAT, json={})
        assert ack.status_code == 200
        assert ack.json()["node_id"] == joined["node_id"]
    with server.client() as admin:
        assert admin.get_node(joined["node_id"]).status == "ready"


async def test_the_agent_rotates_and_stores_its_new_credential(
    server: LiveServer, tmp_path: Path
) -> None:
    token = _join_tokens(server)[0]
    settings = AgentSettings(server_url=server.url, join_token=token, home=tmp_path, name="rig-1")
    control_plane = ControlPlane(server.url)
    try:
        identity = await registration.join(control_plane, settings, collect())
        control_plane.use_credential(identity.credential)
        await control_plane.heartbeat(None)
        rotated = await registration.rotate(control_plane, settings, identity)
        assert rotated.credential != identity.credential
        assert registration.load(settings) == rotated  # stored before it is used
        assert oct(settings.credential_path.stat().st_mode & 0o777) == "0o600"
        assert (await control_plane.heartbeat(None)).node_id == identity.node_id
        assert (await control_plane.assignments(0, 0)).assignments == []
    finally:
        await control_plane.close()
    stale = ControlPlane(server.url, identity.credential)
    try:
        with pytest.raises(Rejected) as refused:
            await stale.heartbeat(None)
        assert refused.value.status == 401
    finally:
        await stale.close()


def test_a_node_credential_cannot_call_admin_or_gateway_endpoints(server: LiveServer) -> None:
    """A node is known (not 401) but forbidden (403) everywhere outside the agent protocol."""
    joined = _join(server, _join_tokens(server)[0])
    calls = [
        ("GET", "/api/v1/nodes", None),
        ("GET", f"/api/v1/nodes/{joined['node_id']}", None),
        ("POST", f"/api/v1/nodes/{joined['node_id']}/revoke", None),
        ("GET", "/api/v1/sites", None),
        ("POST", "/api/v1/sites/tx-west/join-tokens", {}),
        ("POST", "/api/v1/tokens", {"name": "x", "role": "admin"}),
        ("GET", "/api/v1/keys", None),
        ("GET", "/api/v1/deployments", None),
        ("GET", "/api/v1/replicas", None),
        ("GET", "/api/v1/usage", None),
        ("GET", "/api/v1/gateway/view", None),
        ("POST", "/api/v1/gateway/usage", {"records": []}),
    ]
    with _node_http(server, joined["credential"]) as node:
        for method, path, body in calls:
            r = node.request(method, path, json=body)
            assert r.status_code == 403, (method, path, r.status_code)


def test_a_node_cannot_report_or_see_another_nodes_replica(
    server: LiveServer, tiny_model: Path
) -> None:
    tokens = _join_tokens(server, 2)
    first = _join(server, tokens[0], "rig-1")
    second = _join(server, tokens[1], "rig-2")
    with server.client() as admin:
        admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        admin.deploy(DeploymentCreate(model="tiny"))
        replica = wait_until(
            lambda: admin.get_deployment("tiny").replica_list, 15, "a replica to be placed"
        )[0]
    owner, other = (first, second) if replica.node_id == first["node_id"] else (second, first)
    with _node_http(server, other["credential"]) as node:
        r = node.put(f"/api/v1/agent/replicas/{replica.id}/state", json={"status": "ready"})
        assert r.status_code == 404
        assert node.get(ASSIGNMENTS, params={"after": 0}).json()["assignments"] == []
    with server.client() as admin:
        assert admin.get_deployment("tiny").replica_list[0].status == "scheduled"
    with _node_http(server, owner["credential"]) as node:
        assigned = node.get(ASSIGNMENTS, params={"after": 0}).json()["assignments"]
        assert [a["replica_id"] for a in assigned] == [replica.id]


def test_the_credential_cache_never_lets_a_revoked_credential_through(
    server: LiveServer,
) -> None:
    """Beats race the revocation from several threads: none sent after it returned gets in."""
    tokens = _join_tokens(server, 2)
    revoked = _join(server, tokens[0], "rig-1")
    rotated = _join(server, tokens[1], "rig-2")
    done_at: dict[str, float] = {}
    answers: list[tuple[str, float, int]] = []
    stop = threading.Event()

    def hammer(name: str, credential: str) -> None:
        with _node_http(server, credential) as node:
            while not stop.is_set():
                sent = time.monotonic()
                answers.append((name, sent, node.post(HEARTBEAT, json={}).status_code))

    threads = [
        threading.Thread(target=hammer, args=(name, joined["credential"]))
        for name, joined in (("revoked", revoked), ("rotated", rotated))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        with server.http() as http:
            assert http.post(f"/api/v1/nodes/{revoked['node_id']}/revoke").status_code == 200
        done_at["revoked"] = time.monotonic()
        with _node_http(server, rotated["credential"]) as node:
            assert node.post(ROTATE).status_code == 200
        done_at["rotated"] = time.monotonic()
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    for name, ended in done_at.items():
        before = [code for n, sent, code in answers if n == name and sent < ended]
        after = [code for n, sent, code in answers if n == name and sent > ended]
        assert 200 in before, f"{name}: the credential never worked"
        assert after, f"{name}: no beat was sent after the credential was withdrawn"
        assert set(after) == {401}, f"{name}: {after.count(200)} beats got through"


def test_a_read_that_raced_a_revocation_does_not_refill_the_cache() -> None:
    cache = NodeCredentials()
    cache.fill("hash-a", "node-1", cache.generation)
    assert cache.lookup("hash-a") == "node-1"
    started = cache.generation  # a lookup misses and reads the database...
    cache.forget("node-1")  # ...while the node's credential is revoked
    cache.fill("hash-b", "node-1", started)  # what it read is stale: not cached
    assert cache.lookup("hash-a") is None
    assert cache.lookup("hash-b") is None
    cache.fill("hash-c", "node-1", cache.generation)
    assert cache.lookup("hash-c") == "node-1"
    assert len(cache) == 1
