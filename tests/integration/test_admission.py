"""The admission gate: a node takes customer traffic only once its verification passed.

Real agents with a fake NVML (the outside boundary: what a node's driver claims), the real
benchmark on the real tiny model, the real server, gateway and `hashgrid` command.
"""

from pathlib import Path
from typing import Any

import httpx
import pytest

from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.nodes import NodeOut
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.sites import SiteCreate

from support import fake_nvml
from support.admission import report_for
from support.cli import ok, ok_json, server_env
from support.live import LiveFleet, LiveServer, wait_until

H100 = {
    "uuid": "GPU-8f2c",
    "name": "NVIDIA H100 80GB HBM3",
    "total": 81559 * 2**20,
    "free": 80000 * 2**20,
}
HEARTBEAT = "/api/v1/agent/heartbeat"
ASSIGNMENTS = "/api/v1/agent/assignments"
VERIFICATION = "/api/v1/agent/verification"
VIEW = "/api/v1/gateway/view"


def _node(fleet: LiveFleet, name: str) -> NodeOut | None:
    return next((n for n in fleet.admin.list_nodes() if n.name == name), None)


def _admission(fleet: LiveFleet, name: str) -> str | None:
    node = _node(fleet, name)
    return None if node is None else str(node.admission)


def _chat(gateway_url: str, key: str) -> httpx.Response:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    headers = {"authorization": f"Bearer {key}"}
    return httpx.post(f"{gateway_url}/v1/chat/completions", json=body, headers=headers, timeout=30)


def test_a_node_claiming_an_h100_with_a_cpu_benchmark_is_refused_until_fixed_and_verified(
    tmp_path: Path, tiny_model: Path
) -> None:
    gpus = tmp_path / "nvml.json"
    fake_nvml.write_gpus(gpus, [H100])
    with LiveFleet(tmp_path) as fleet:
        admin = fleet.admin
        admin.create_site(SiteCreate(name="local", region="us-south", country="US", power_mw=1.0))
        admin.create_organization(OrganizationCreate(name="acme", kind="customer"))
        key = admin.create_key(KeyCreate(customer="acme")).key
        size = tiny_model.stat().st_size
        admin.add_model(ModelCreate(name="tiny", source=str(tiny_model), size_bytes=size))
        # A request waits this long for a replica to come: the refused node's never does.
        gateway = fleet.start_gateway(cold_start_wait_s=2.0)
        fleet.add_agent("local", "rig-1", env=fake_nvml.env(gpus))

        # Its agent benchmarks at join, on the CPU (llama.cpp here has no GPU to offload to).
        wait_until(lambda: _admission(fleet, "rig-1") == "refused", 90, "the node refused")
        node = _node(fleet, "rig-1")
        assert node is not None
        assert [g.name for g in node.fingerprint.gpus] == ["NVIDIA H100 80GB HBM3"]
        assert node.verification is not None
        assert node.verification.benchmark is not None
        generated = node.verification.benchmark.generation_tokens_per_s
        assert node.admission_reason == (
            "verification failed: claims 1 GPU(s) (NVIDIA H100 80GB HBM3), but the benchmark "
            f"ran on the CPU (gpu_offload false, {generated:,.0f} tokens/s generated): llama.cpp "
            "on this node did not use them"
        )
        env = server_env(fleet.server)
        shown = ok("nodes", "show", "rig-1", env=env)
        assert f"admission: refused: {node.admission_reason}" in shown
        listed = ok_json("nodes", "list", env=env)
        assert [(n["name"], n["admission"]) for n in listed] == [("rig-1", "refused")]
        assert "admission" in ok("nodes", "list", env=env)

        # Refused: no placement, no traffic.
        admin.deploy(DeploymentCreate(model="tiny", replicas=1))
        wait_until(
            lambda: (
                admin.get_deployment("tiny").condition
                == "1 replica(s) pending: no admitted node (awaiting or failed verification)"
            ),
            30,
            "the deployment to wait for an admitted node",
        )
        assert admin.get_deployment("tiny").replica_list == []
        assert gateway.ready_replicas("tiny") == 0
        refused = _chat(gateway.url, key)
        assert refused.status_code == 503, refused.text
        assert "has no ready replica" in refused.text

        # The operator fixes the node (its GPU claim goes: the passthrough was broken) and asks
        # for a verification; the agent benchmarks again and the node is admitted and serves.
        fake_nvml.write_gpus(gpus, [])
        asked = ok_json("nodes", "verify", "rig-1", env=env)
        assert asked["admission"] == "pending"
        wait_until(lambda: _admission(fleet, "rig-1") == "admitted", 90, "the node admitted")
        fixed = _node(fleet, "rig-1")
        assert fixed is not None
        assert fixed.fingerprint.gpus == []
        assert fixed.admission_reason is not None
        assert fixed.admission_reason.startswith(
            "verification passed: generated the reference model at "
        )
        assert "on the CPU, at least 100 expected" in fixed.admission_reason
        wait_until(lambda: gateway.ready_replicas("tiny") == 1, 90, "the gateway to route it")
        answer = _chat(gateway.url, key)
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["role"] == "assistant"
        assert "admission: admitted: verification passed" in ok("nodes", "show", "rig-1", env=env)


# The gate through the agent protocol, without engines.


@pytest.fixture
def site(server: LiveServer) -> str:
    with server.client() as admin:
        admin.create_site(SiteCreate(name="tx", region="us-south", country="US", power_mw=1.0))
    return "tx"


def _get(server: LiveServer, node: httpx.Client) -> NodeOut:
    with server.client() as admin:
        return admin.get_node(node.headers["x-node-id"])


def _routed_replicas(server: LiveServer) -> list[str]:
    with server.http() as http:
        view = http.get(VIEW, params={"after": 0, "wait": 0}).json()
    return [r["replica_id"] for m in view["models"] for r in m["replicas"]]


def _assigned(node: httpx.Client) -> list[dict[str, Any]]:
    answer: list[dict[str, Any]] = node.get(ASSIGNMENTS, params={"after": 0}).json()["assignments"]
    return answer


def test_a_joined_node_is_pending_and_its_heartbeat_ack_asks_for_a_verification(
    server: LiveServer, site: str
) -> None:
    node = server.join_node(site, "rig-1", verified=False)
    assert _get(server, node).admission == "pending"
    assert node.post(HEARTBEAT, json={}).json()["verify"] is True
    fingerprint = _get(server, node).fingerprint.model_dump(mode="json")
    verdict = node.post(VERIFICATION, json=report_for(fingerprint)).json()
    assert verdict["problems"] == []
    assert node.post(HEARTBEAT, json={}).json()["verify"] is False
    admitted = _get(server, node)
    assert admitted.admission == "admitted"
    assert admitted.admission_reason is not None
    assert admitted.admission_reason.startswith("verification passed: ")


def test_re_verification_takes_an_admitted_node_s_replicas_off_traffic_until_it_passes_again(
    server: LiveServer, site: str, tiny_model: Path
) -> None:
    with server.client() as admin:
        size = tiny_model.stat().st_size
        admin.add_model(ModelCreate(name="tiny", source=str(tiny_model), size_bytes=size))
        admin.deploy(DeploymentCreate(model="tiny", replicas=1))
    node = server.join_node(site, "rig-1")
    replica = wait_until(lambda: _assigned(node), 15, "a replica assigned")[0]["replica_id"]
    state = f"/api/v1/agent/replicas/{replica}/state"
    assert node.put(state, json={"status": "starting"}).status_code == 200
    ready = {"status": "ready", "endpoint": "http://127.0.0.1:9"}
    assert node.put(state, json=ready).status_code == 200
    assert _routed_replicas(server) == [replica]

    with server.http() as http:
        asked = http.post(f"/api/v1/nodes/{node.headers['x-node-id']}/verify")
    assert asked.status_code == 200, asked.text
    assert asked.json()["admission"] == "pending"
    assert asked.json()["admission_reason"] == (
        "re-verification asked by the platform admin; its agent benchmarks again at its next "
        "heartbeat"
    )
    assert _routed_replicas(server) == []  # off the gateways' view at once
    assert node.post(HEARTBEAT, json={}).json()["verify"] is True
    wait_until(lambda: _assigned(node) == [], 15, "its replica taken off the node")

    fingerprint = _get(server, node).fingerprint.model_dump(mode="json")
    assert node.post(VERIFICATION, json=report_for(fingerprint)).status_code == 200
    assert _get(server, node).admission == "admitted"
    wait_until(lambda: _assigned(node), 15, "a replica placed on it again")


def test_a_node_that_claims_a_gpu_after_passing_as_a_cpu_node_is_refused(
    server: LiveServer, site: str
) -> None:
    """The stored benchmark is judged again against a changed fingerprint: hardware claimed
    after a verification must agree with it."""
    node = server.join_node(site, "rig-1")
    assert _get(server, node).admission == "admitted"
    fingerprint = _get(server, node).fingerprint.model_dump(mode="json")
    fingerprint["gpus"] = [
        {
            "index": 0,
            "uuid": H100["uuid"],
            "name": H100["name"],
            "memory_total_bytes": H100["total"],
            "memory_free_bytes": H100["free"],
        }
    ]
    assert node.post(HEARTBEAT, json={"fingerprint": fingerprint}).status_code == 200
    refused = _get(server, node)
    assert refused.admission == "refused"
    assert refused.admission_reason is not None
    assert "claims 1 GPU(s) (NVIDIA H100 80GB HBM3), but the benchmark ran on the CPU" in (
        refused.admission_reason
    )
