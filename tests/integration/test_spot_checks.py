"""Spot-checks end to end: a real control plane and gateway, three nodes speaking the agent
protocol whose replicas are real llama.cpp engines on the tiny model. One node sits at a site of
the platform's own (trusted); two at a miner's site: an honest one, and a liar whose engine
sits behind a proxy that rewrites every answer (tests/support/upstream.py). Clients are in the
miner's country, so the two untrusted replicas take the customers' requests and the trusted
one only the gateway's replays."""

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from hashgrid.common.net import free_port
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.nodes import NodeOut
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.sites import SiteCreate

from support.cli import ok, ok_json, server_env
from support.live import LiveFleet, wait_until
from support.tunnel import NodeTunnel
from support.upstream import AlteringUpstream

HEARTBEAT = "/api/v1/agent/heartbeat"


class Engine:
    """llama.cpp's OpenAI server on the tiny model, as the agent launches it, on loopback."""

    def __init__(self, model: Path, log: Path) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        argv = [
            sys.executable, "-m", "hashgrid.agent.engines.llamacpp_server", "--model", str(model),
            "--model_alias", "tiny", "--host", "127.0.0.1", "--port", str(port),
            "--n_ctx", "512", "--interrupt_requests", "false",
        ]  # fmt: skip
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
            )

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/openapi.json", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


@pytest.fixture
def engines(tiny_model: Path, tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    """Two engines: the trusted node's, and the one both untrusted nodes front."""
    both = (Engine(tiny_model, tmp_path / "trusted.log"), Engine(tiny_model, tmp_path / "u.log"))
    try:
        for engine in both:
            wait_until(engine.ready, 60, "an engine to load the tiny model")
        yield both
    finally:
        for engine in both:
            engine.stop()


def beating(nodes: list[httpx.Client], stop: threading.Event) -> None:
    """The nodes' heartbeats, as their agents would send them, until `stop`."""

    def beat() -> None:
        while not stop.wait(0.5):
            for node in nodes:
                node.post(HEARTBEAT, json={})

    threading.Thread(target=beat, daemon=True).start()


def test_a_node_whose_engine_alters_answers_is_quarantined_and_an_honest_one_is_not(
    engines: tuple[Engine, Engine], tiny_model: Path, tmp_path: Path
) -> None:
    trusted_engine, engine = engines
    liar_engine = AlteringUpstream(engine.url)
    liar_engine.server.start()
    stop = threading.Event()
    overrides = {"quarantine_mismatches": 2, "quarantine_window": 5, "score_interval_s": 0.3}
    with LiveFleet(tmp_path, **overrides) as fleet:
        admin = fleet.admin
        admin.create_organization(OrganizationCreate(name="miner", kind="operator"))
        admin.create_organization(OrganizationCreate(name="acme", kind="customer"))
        # The platform's own site (no operator given) is far from the clients; the miner's near.
        admin.create_site(SiteCreate(name="home", region="af-east", country="KE", power_mw=1.0))
        admin.create_site(
            SiteCreate(name="mine", region="us-east", country="US", power_mw=1.0, operator="miner")
        )
        nodes = {
            "trusted": fleet.server.join_node("home", "trusted"),
            "honest": fleet.server.join_node("mine", "honest"),
            "liar": fleet.server.join_node("mine", "liar"),
        }
        beating(list(nodes.values()), stop)
        endpoints = {
            "trusted": trusted_engine.url,
            "honest": engine.url,
            "liar": liar_engine.server.url,
        }
        try:
            admin.add_model(
                ModelCreate(
                    name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size
                )
            )
            admin.deploy(DeploymentCreate(model="tiny", replicas=3))  # one on each node
            replicas = {}
            for name, node in nodes.items():
                placed = wait_until(
                    lambda node=node: node.get("/api/v1/agent/assignments").json()["assignments"],
                    30,
                    f"a replica placed on {name}",
                )
                replicas[name] = placed[0]["replica_id"]
                ready = {"status": "ready", "endpoint": endpoints[name]}
                path = f"/api/v1/agent/replicas/{replicas[name]}/state"
                assert node.put(path, json=ready).status_code == 200
            key = admin.create_key(KeyCreate(customer="acme")).key
            gateway = fleet.start_gateway(spot_check_share=1.0, spot_check_flush_s=0.2)
            with ExitStack() as tunnels:
                for name, node in nodes.items():  # each node serves its engine down its tunnel
                    tunnel = tunnels.enter_context(NodeTunnel(gateway.tunnel_url, node))
                    tunnel.engines[replicas[name]] = endpoints[name]
                wait_until(lambda: gateway.ready_replicas("tiny") == 3, 30, "replicas routable")
                _check(fleet, gateway.url, key, liar_engine)
        finally:
            stop.set()
            for node in nodes.values():
                node.close()
            liar_engine.server.stop()


def _check(fleet: LiveFleet, gateway: str, key: str, liar_engine: AlteringUpstream) -> None:
    admin = fleet.admin
    answered: list[str] = []  # the site of each answer the customer got

    def ask() -> None:
        r = httpx.post(
            f"{gateway}/v1/chat/completions",
            json={
                "model": "tiny",
                "messages": [{"role": "user", "content": f"tell me a story {len(answered)}"}],
                "max_tokens": 8,
                "temperature": 0,
            },
            headers={"authorization": f"Bearer {key}", "x-hashgrid-client-country": "US"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        answered.append(r.headers["x-hashgrid-site"])

    def gateway_replicas() -> int:
        health = httpx.get(f"{gateway}/healthz", timeout=5).json()
        return int(health.get("ready_replicas", {}).get("tiny", 0))

    def node(name: str) -> NodeOut:
        return admin.get_node(name)

    def quarantined() -> bool:
        ask()
        return node("liar").admission == "quarantined"

    wait_until(quarantined, 120, "the liar quarantined")
    assert liar_engine.answered >= 2
    liar = node("liar")
    assert liar.admission_reason is not None
    assert "spot-checks disagreed" in liar.admission_reason
    assert "exact check" in liar.admission_reason  # one model file, one engine, one class
    # Quarantined: its replica leaves the gateways' view; the honest one serves on.
    wait_until(lambda: gateway_replicas() == 2, 30, "the liar's replica out of the view")
    served_by_liar = liar_engine.answered
    for _ in range(3):
        ask()
    assert liar_engine.answered == served_by_liar

    def honest_checked() -> bool:
        ask()
        r = node("honest").reliability
        return r is not None and r.checks >= 3

    wait_until(honest_checked, 120, "the honest node checked three times")
    honest = node("honest")
    assert honest.admission == "admitted"
    assert honest.reliability is not None
    assert honest.reliability.mismatches == 0
    assert honest.reliability.agreement == 1.0
    wait_until(
        lambda: (r := node("liar").reliability) is not None and r.mismatches >= 2,
        30,
        "the liar's score to count its mismatches",
    )
    liar_score = node("liar").reliability
    assert liar_score is not None
    assert liar_score.score < honest.reliability.score

    # What the operator reads: the score and why (`hashgrid nodes show`, `sites list`).
    env = server_env(fleet.server)
    shown = ok("nodes", "show", "liar", env=env)
    assert "quarantined" in shown
    assert f"agreement  {liar_score.agreement:.2f}" in shown
    assert f"({liar_score.mismatches} of {liar_score.checks} spot-checks disagreed)" in shown
    sites = {s["name"]: s for s in ok_json("sites", "list", env=env)}
    assert sites["mine"]["reliability"]["mismatches"] >= 2
    assert sites["home"]["reliability"]["checks"] == 0  # the trusted node is never checked

    mine = admin.get_site("mine").reliability  # the site: its two nodes' counts together
    assert mine is not None
    assert mine.checks >= liar_score.checks + 3
    assert mine.mismatches == liar_score.mismatches

    # Not billed: every usage record is a customer's answer from the miner's site, and the
    # trusted node, which answered every replay, has none.
    wait_until(lambda: len(admin.usage(limit=500)) == len(answered), 30, "every answer metered")
    records = admin.usage(limit=500)
    assert set(answered) == {"mine"}
    trusted = node("trusted").id
    assert all(r.node_id != trusted for r in records)
    assert {r.site for r in records} == {"mine"}
