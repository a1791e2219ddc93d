"""Placement on GPUs through the real control plane, on SQLite and on PostgreSQL: a node that
joins with GPUs in its fingerprint is assigned concrete GPUs, never a quarantined one."""

from pathlib import Path
from typing import Any

import httpx
import pytest

from hashgrid.client import ApiError
from hashgrid.contracts.agent import PROTOCOL_HEADER, Fingerprint, GpuInfo
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentChange, DeploymentCreate
from hashgrid.contracts.api.sites import SiteCreate

from support.admission import admit
from support.live import LiveServer, wait_until

GIB = 2**30
H100 = "NVIDIA H100 80GB HBM3"


def gpu_fingerprint(quarantined: int) -> dict[str, Any]:
    """A node with three H100s, one of them quarantined."""
    gpus = [
        GpuInfo(
            index=i,
            uuid=f"GPU-test-{i}",
            name=H100,
            memory_total_bytes=80 * GIB,
            memory_free_bytes=79 * GIB,
            quarantined=i == quarantined,
            quarantine_reason="uncorrected ECC errors" if i == quarantined else None,
        )
        for i in range(3)
    ]
    fingerprint = Fingerprint(
        hostname="rig-gpu",
        os="Linux",
        arch="x86_64",
        cpu_model="AMD EPYC 9654",
        cpu_count=96,
        memory_total_bytes=512 * GIB,
        memory_available_bytes=500 * GIB,
        gpus=gpus,
        gpu_driver="550.54.15",
    )
    return fingerprint.model_dump(mode="json")


def join_gpu_node(server: LiveServer) -> httpx.Client:
    """Join a GPU node at a new site through the agent protocol; its HTTP client, beating."""
    with server.client() as admin:
        admin.create_site(
            SiteCreate(name="gpu-site", region="us-south", country="US", power_mw=10.0)
        )
        token = admin.create_join_token("gpu-site").token
    body = {"join_token": token, "name": "rig-gpu", "fingerprint": gpu_fingerprint(0)}
    with server.http(token=None) as http:
        joined = http.post("/api/v1/agent/join", json=body)
    assert joined.status_code == 200, joined.text
    node = server.http(token=joined.json()["credential"])
    node.headers[PROTOCOL_HEADER] = "1"
    admit(node, body["fingerprint"])  # as its agent would: a benchmark on the GPUs it claims
    return node


def assignments(node: httpx.Client) -> list[dict[str, Any]]:
    """Beat (the node stays ready) and read the node's assignments now."""
    assert node.post("/api/v1/agent/heartbeat", json={}).status_code == 200
    answer = node.get("/api/v1/agent/assignments", params={"after": 0})
    assert answer.status_code == 200
    found: list[dict[str, Any]] = answer.json()["assignments"]
    return found


def test_a_vllm_deployment_gets_distinct_healthy_gpus_on_a_gpu_node(
    server: LiveServer, tiny_model: Path
) -> None:
    with join_gpu_node(server) as node, server.client() as admin:
        admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        deployed = admin.deploy(
            DeploymentCreate(model="tiny", engine="vllm", tensor_parallel_size=2)
        )
        assert (deployed.engine, deployed.tensor_parallel_size) == ("vllm", 2)

        found = wait_until(lambda: assignments(node), 15, "an assignment")
        assert len(found) == 1
        assignment = found[0]
        assert assignment["engine"] == "vllm"
        assert assignment["gpus"] == [1, 2]  # GPU 0 is quarantined
        assert assignment["model"]["tensor_parallel_size"] == 2
        # vLLM is told to take its share of each GPU, not the 0.9 it would take by default.
        assert 0.05 <= assignment["model"]["gpu_memory_fraction"] < 0.9

        shown = admin.get_deployment("tiny")
        assert [r.gpus for r in shown.replica_list] == [[1, 2]]
        assert shown.condition is None


def test_a_llama_cpp_replica_on_a_gpu_node_gets_one_gpu_and_a_type_it_lacks_waits(
    server: LiveServer, tiny_model: Path
) -> None:
    with join_gpu_node(server) as node, server.client() as admin:
        admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        admin.deploy(DeploymentCreate(model="tiny"))
        admin.deploy(DeploymentCreate(model="tiny", name="on-a100", engine="vllm", gpu_type="A100"))

        found = wait_until(lambda: assignments(node), 15, "an assignment")
        assert [(a["deployment"], a["engine"], a["gpus"]) for a in found] == [
            ("tiny", "llamacpp", [1])
        ]
        waiting = wait_until(lambda: admin.get_deployment("on-a100").condition, 15, "a reason")
        assert waiting == "1 replica(s) pending: no node with a usable A100 GPU"


def test_deploy_refuses_an_unknown_engine(server: LiveServer, tiny_model: Path) -> None:
    with server.client() as admin, server.http() as http:
        admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        r = http.post("/api/v1/deployments", json={"model": "tiny", "engine": "tgi"})
        assert r.status_code == 422


REPO = "hf://Qwen/Qwen2.5-0.5B-Instruct@7ae557604adf67be50417f59c2c2f167def9a775"


def test_a_safetensors_repository_is_placed_for_vllm_and_never_given_to_llama_cpp(
    server: LiveServer, tiny_model: Path
) -> None:
    with join_gpu_node(server) as node, server.client() as admin:
        model = admin.add_model(
            ModelCreate(name="qwen", source=REPO, format="safetensors", size_bytes=988 * 2**20)
        )
        assert (model.format, model.engine) == ("safetensors", "vllm")
        asked = {"name": "q2", "source": REPO, "format": "safetensors", "size_bytes": 1}
        with server.http() as http:
            refused = http.post("/api/v1/models", json={**asked, "engine": "llamacpp"})
        assert refused.status_code == 422
        assert "llamacpp serves gguf models, not safetensors" in refused.text
        with pytest.raises(ApiError, match="cannot serve 'qwen', a safetensors model"):
            admin.deploy(DeploymentCreate(model="qwen", engine="llamacpp"))

        admin.deploy(DeploymentCreate(model="qwen"))
        [assignment] = wait_until(lambda: assignments(node), 15, "an assignment")
        assert assignment["engine"] == "vllm"
        assert (assignment["model"]["source"], assignment["model"]["format"]) == (
            REPO,
            "safetensors",
        )
        assert len(assignment["gpus"]) == 1
        with pytest.raises(ApiError, match="cannot serve"):
            admin.change_deployment("qwen", DeploymentChange(engine="llamacpp"))
        assert admin.get_deployment("qwen").engine == "vllm"
