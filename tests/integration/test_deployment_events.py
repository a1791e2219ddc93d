"""A deployment's events: why replicas wait, where they went, when they became ready or failed."""

from pathlib import Path
from typing import Any

from hashgrid.client import HashgridClient
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentChange, DeploymentCreate
from hashgrid.contracts.api.sites import SiteCreate

from support.admission import admit
from support.live import LiveServer, wait_until


def _messages(admin: HashgridClient, deployment: str) -> list[str]:
    return [e.message for e in admin.get_deployment(deployment).events]


def test_events_tell_a_deployments_story(server: LiveServer, tiny_model: Path) -> None:
    with server.client() as admin:
        admin.create_site(SiteCreate(name="tx", region="us-south", country="US", power_mw=1.0))
        admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        admin.deploy(DeploymentCreate(model="tiny"))
        waiting = wait_until(lambda: _messages(admin, "tiny"), 20, "an event")
        assert waiting == ["1 replica(s) pending: no ready node"]

        with server.join_node("tx", "rig", verified=False) as node:
            node_id = node.headers["x-node-id"][:8]
            unverified = "1 replica(s) pending: no admitted node (awaiting or failed verification)"
            wait_until(lambda: _messages(admin, "tiny")[0] == unverified, 20, "a pending node")
            joined = admin.get_node(node.headers["x-node-id"])
            fingerprint = joined.fingerprint.model_dump(mode="json")
            admit(node, fingerprint)

            def assigned() -> list[dict[str, Any]]:
                return list(node.get("/api/v1/agent/assignments").json()["assignments"])

            replica = wait_until(assigned, 20, "the replica placed")[0]["replica_id"]
            failed = {"status": "failed", "reason": "engine exited with code 1\nlast log lines"}
            ready = {"status": "ready", "endpoint": "http://10.0.0.5:40000"}
            for report in (failed, ready, ready):  # a repeated report is no new event
                path = f"/api/v1/agent/replicas/{replica}/state"
                assert node.put(path, json=report).status_code == 200

        short = replica[:8]
        assert _messages(admin, "tiny") == [  # newest first
            f"replica {short} ready on node {node_id}",
            f"replica {short} failed on node {node_id}: engine exited with code 1",
            "every replica placed",
            f"replica {short} placed on node {node_id} (CPU)",
            unverified,
            "1 replica(s) pending: no ready node",
        ]

        admin.change_deployment("tiny", DeploymentChange(replicas=0))
        removed = f"replica {short} removed: scaled down"
        wait_until(lambda: _messages(admin, "tiny")[0] == removed, 20, "the removal")
