"""Verification at join: the real benchmark, the report, and the node's capacity class, on
SQLite and on PostgreSQL."""

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from hashgrid.agent import benchmark
from hashgrid.agent.fingerprint import collect
from hashgrid.agent.settings import AgentSettings
from hashgrid.agent.verification import measure
from hashgrid.capacity.verdict import REFERENCE_MODEL, hardware_class
from hashgrid.contracts.agent import PROTOCOL_HEADER, Fingerprint, GpuInfo
from hashgrid.contracts.api.nodes import NodeOut
from hashgrid.contracts.api.sites import SiteCreate

from support.live import ADMIN_TOKEN, AgentProcess, LiveServer, wait_until

VERIFICATION = "/api/v1/agent/verification"
HEARTBEAT = "/api/v1/agent/heartbeat"
PROBLEM = "application/problem+json"
GIB = 2**30

FIGURES: dict[str, Any] = {
    "model": "tiny-llama",
    "engine": "llama-cpp-python 0.3.36",
    "gpu_offload": True,
    "prompt_tokens": 129,
    "generated_tokens": 128,
    "prompt_tokens_per_s": 50_000.0,
    "generation_tokens_per_s": 10_000.0,
    "seconds": 0.5,
}


def _h100_node() -> Fingerprint:
    fingerprint = collect()
    fingerprint.gpus = [
        GpuInfo(index=0, uuid="GPU-1", name="NVIDIA H100 80GB HBM3",
                memory_total_bytes=81559 * 2**20, memory_free_bytes=80000 * 2**20),
    ]  # fmt: skip
    return fingerprint


def _join(
    server: LiveServer, count: int, fingerprint: Fingerprint | None = None
) -> list[dict[str, Any]]:
    with server.client() as c:
        c.create_site(SiteCreate(name="tx-west", region="us-south", country="US", power_mw=10.0))
        tokens = [c.create_join_token("tx-west").token for _ in range(count)]
    body = (fingerprint or collect()).model_dump(mode="json")
    joined = []
    with server.http(token=None) as http:
        for i, token in enumerate(tokens):
            r = http.post(
                "/api/v1/agent/join",
                json={"join_token": token, "name": f"rig-{i + 1}", "fingerprint": body},
            )
            assert r.status_code == 200, r.text
            joined.append(r.json())
    return joined


def _node_http(server: LiveServer, credential: str) -> httpx.Client:
    client = server.http(token=credential)
    client.headers[PROTOCOL_HEADER] = "1"
    return client


def _node(server: LiveServer, node_id: str) -> NodeOut:
    with server.client() as admin:
        return admin.get_node(node_id)


# The benchmark itself, on the real tiny model.


def test_the_benchmark_generates_the_fixed_token_count_from_the_reference_model(
    tiny_model: Path,
) -> None:
    result = benchmark.run(tiny_model, gpu=False)
    assert result.model == REFERENCE_MODEL
    assert result.generated_tokens == benchmark.GENERATED_TOKENS
    assert result.prompt_tokens > 100  # the fixed prompt, tokenized
    assert result.prompt_tokens_per_s > 0
    assert result.generation_tokens_per_s > 0
    assert result.seconds > 0
    assert result.gpu_offload is False
    assert result.engine.startswith("llama-cpp-python ")


async def test_the_agent_runs_the_benchmark_in_a_child_process(tmp_path: Path) -> None:
    settings = AgentSettings(server_url="http://cp", home=tmp_path)
    report = await measure(settings, collect())
    assert report.error is None
    assert report.benchmark is not None
    assert report.benchmark.generated_tokens == benchmark.GENERATED_TOKENS
    assert report.benchmark.generation_tokens_per_s > 0
    assert (settings.reference_dir / f"{REFERENCE_MODEL}.gguf").is_file()


async def test_a_benchmark_that_fails_or_overruns_is_reported_as_an_error(tmp_path: Path) -> None:
    blocked = AgentSettings(server_url="http://cp", home=tmp_path)
    blocked.reference_dir.write_text("a file where the model's folder should be")
    failed = await measure(blocked, collect())
    assert failed.benchmark is None
    assert failed.error is not None
    assert failed.error.startswith("the benchmark exited with 1: ")
    assert "FileExistsError" in failed.error or "NotADirectoryError" in failed.error

    hurried = AgentSettings(server_url="http://cp", home=tmp_path / "b", verify_timeout_s=0.01)
    overran = await measure(hurried, collect())
    assert overran.error == "the benchmark did not finish within 0.01 s"


# The protocol and the node record.


def test_the_server_derives_the_class_itself_and_again_when_the_hardware_changes(
    server: LiveServer,
) -> None:
    (joined,) = _join(server, 1, _h100_node())
    assert _node(server, joined["node_id"]).capacity_class is None
    with _node_http(server, joined["credential"]) as node:
        revision = node.post(HEARTBEAT, json={}).json()["assignments_revision"]
        # A class sent by the agent is no part of the protocol, and is ignored.
        r = node.post(VERIFICATION, json={"benchmark": FIGURES, "capacity_class": "gpu-141g-x8"})
        assert r.status_code == 200, r.text
        assert r.json()["capacity_class"] == "gpu-80g"
        assert r.json()["problems"] == []
        assert _node(server, joined["node_id"]).admission == "admitted"
        moved = node.post(HEARTBEAT, json={}).json()["assignments_revision"]
        assert moved > revision  # the class changed: watchers hear of it

        assert node.post(VERIFICATION, json={"benchmark": FIGURES}).status_code == 200
        assert node.post(HEARTBEAT, json={}).json()["assignments_revision"] == moved

        stored = _node(server, joined["node_id"])
        assert stored.capacity_class == "gpu-80g"
        assert stored.verification is not None
        assert stored.verification.benchmark is not None
        assert stored.verification.benchmark.generation_tokens_per_s == 10_000.0

        broken = _h100_node()
        broken.gpus[0].quarantined = True
        broken.gpus[0].quarantine_reason = "XID 79 (GPU has fallen off the bus)"
        node.post(HEARTBEAT, json={"fingerprint": broken.model_dump(mode="json")})
    after = _node(server, joined["node_id"])
    assert after.capacity_class == "unusable"
    assert after.verification is not None
    assert after.verification.problems == [
        "the benchmark ran on a GPU, but the node reports no usable GPU",
    ]
    assert after.verification.notes == [
        "GPU 0 (NVIDIA H100 80GB HBM3) is quarantined: XID 79 (GPU has fallen off the bus)",
    ]
    # Its benchmark no longer agrees with its hardware: refused until its agent verifies again.
    assert after.admission == "refused"
    assert after.admission_reason == (
        "verification failed: the benchmark ran on a GPU, but the node reports no usable GPU"
    )


def test_a_failed_benchmark_leaves_the_node_unverified_and_refused(server: LiveServer) -> None:
    (joined,) = _join(server, 1)
    with _node_http(server, joined["credential"]) as node:
        r = node.post(VERIFICATION, json={"error": "llama.cpp could not load the model"})
    assert r.status_code == 200, r.text
    stored = _node(server, joined["node_id"])
    assert stored.capacity_class == "unverified"
    assert stored.verification is not None
    assert stored.verification.error == "llama.cpp could not load the model"
    assert "the benchmark did not run: llama.cpp could not load the model" in (
        stored.verification.problems
    )
    assert stored.admission == "refused"
    assert stored.admission_reason == (
        "verification failed: the benchmark did not run: llama.cpp could not load the model"
    )


def test_a_node_credential_writes_only_its_own_record(server: LiveServer) -> None:
    mine, other = _join(server, 2)
    with _node_http(server, mine["credential"]) as node:
        body = {"benchmark": FIGURES, "node_id": other["node_id"]}  # naming another node
        assert node.post(VERIFICATION, json=body).status_code == 200
    assert _node(server, mine["node_id"]).verification is not None
    assert _node(server, other["node_id"]).verification is None
    assert _node(server, other["node_id"]).capacity_class is None

    # The admin is known but no node (403); a made-up credential and none are nobody (401).
    for token, status in ((ADMIN_TOKEN, 403), ("hg_node_not-a-real-credential", 401), (None, 401)):
        with _node_http(server, token) if token else server.http(token=None) as caller:
            r = caller.post(VERIFICATION, json={"benchmark": FIGURES})
        assert r.status_code == status, (token, r.text)
        assert r.headers["content-type"] == PROBLEM

    with server.http() as admin:
        assert admin.post(f"/api/v1/nodes/{mine['node_id']}/revoke").status_code == 200
    with _node_http(server, mine["credential"]) as node:
        assert node.post(VERIFICATION, json={"error": "late"}).status_code == 401
    assert _node(server, mine["node_id"]).verification is not None
    assert _node(server, other["node_id"]).verification is None


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"benchmark": FIGURES, "error": "both"},
        {"benchmark": {**FIGURES, "generation_tokens_per_s": -5.0}},
        {"benchmark": {**FIGURES, "generated_tokens": 0}},
        {"benchmark": {k: v for k, v in FIGURES.items() if k != "prompt_tokens"}},
        {"error": ""},
        {"error": "x" * 5000},
        [FIGURES],
        "not json",
    ],
    ids=[
        "empty", "both", "negative-speed", "no-tokens", "missing-field", "empty-error",
        "long-error", "a-list", "not-json",
    ],
)  # fmt: skip
def test_a_malformed_report_is_a_problem_and_changes_nothing(server: LiveServer, body: Any) -> None:
    (joined,) = _join(server, 1)
    with _node_http(server, joined["credential"]) as node:
        if body == "not json":
            r = node.post(
                VERIFICATION, content=b"{not json", headers={"content-type": "application/json"}
            )
        else:
            r = node.post(VERIFICATION, json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["status"] == 422
    stored = _node(server, joined["node_id"])
    assert (stored.verification, stored.capacity_class) == (None, None)


# The whole path: a real agent process joins, benchmarks and reports.


def _verified(server: LiveServer, name: str) -> NodeOut | None:
    with server.client() as admin:
        nodes = [n for n in admin.list_nodes() if n.name == name]
    return nodes[0] if nodes and nodes[0].verification is not None else None


def _verified_after(server: LiveServer, node_id: str, earlier: datetime) -> bool:
    verification = _node(server, node_id).verification
    return verification is not None and verification.verified_at > earlier


def _hashgrid(server: LiveServer, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "hashgrid", *args],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("HASHGRID")},
            "HASHGRID_SERVER": server.url,
            "HASHGRID_TOKEN": ADMIN_TOKEN,
            "NO_COLOR": "1",
            "COLUMNS": "200",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def test_an_agent_verifies_its_node_at_join_and_again_when_asked(
    server: LiveServer, tmp_path: Path
) -> None:
    with server.client() as admin:
        admin.create_site(SiteCreate(name="local", region="local", country="US", power_mw=1.0))
        token = admin.create_join_token("local").token
    agent = AgentProcess(server.url, tmp_path / "agent", token, "rig-1")
    # The agent notes its verification once the control plane answered, a moment after the record.
    noted = tmp_path / "agent" / "verification.json"
    try:
        node = wait_until(lambda: _verified(server, "rig-1"), 60, "the node to be verified")
        wait_until(noted.is_file, 10, "the agent to note its verification")
    finally:
        assert agent.terminate() == 0, agent.log()
    assert node.capacity_class == hardware_class(collect())  # `cpu` on a machine with no GPU
    assert node.admission == "admitted"
    v = node.verification
    assert v is not None
    assert v.error is None
    assert v.benchmark is not None
    assert v.benchmark.model == REFERENCE_MODEL
    assert v.benchmark.generated_tokens == benchmark.GENERATED_TOKENS
    assert v.benchmark.prompt_tokens_per_s > 0
    assert v.benchmark.generation_tokens_per_s > 0
    taken = json.loads(noted.read_text())
    assert taken["node_id"] == node.id

    listed = json.loads(_hashgrid(server, "nodes", "list", "--json"))
    assert [(n["name"], n["capacity_class"]) for n in listed] == [("rig-1", node.capacity_class)]
    assert node.capacity_class in _hashgrid(server, "nodes", "list")
    shown = _hashgrid(server, "nodes", "show", "rig-1")
    assert f"class {node.capacity_class}" in shown
    assert f"generation: {benchmark.GENERATED_TOKENS} tokens at" in shown
    assert json.loads(_hashgrid(server, "nodes", "show", node.id, "--json"))["verification"]

    # Asked again (`--verify`), the agent benchmarks again and the record is renewed.
    again = AgentProcess(server.url, tmp_path / "agent", None, "rig-1", ["--verify"])
    try:
        wait_until(lambda: _verified_after(server, node.id, v.verified_at), 60, "a re-verification")
    finally:
        assert again.terminate() == 0, again.log()
