"""A node behind its site's NAT serves the official `openai` client through the gateway, with
no port open to it: the control plane and gateway on the public side, the agent on the site's
LAN behind a masquerading router that drops every connection from outside (network namespaces
this test makes: see `support/netns.py`). Every process is the real command a user runs, and
every hop is TLS: the control plane and the gateway listen beyond loopback, so they serve HTTPS,
the node pins the control plane's CA from its join token, and the tunnel is `wss://`."""

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.live import wait_until
from support.netns import NODE_IP, PUBLIC_IP, NatSite

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

ADMIN = "hg_admin_nat-test-token"
SERVER = f"https://{PUBLIC_IP}:7081"
GATEWAY = f"https://{PUBLIC_IP}:7080"
FAST = {  # liveness and placement within a test's patience
    "HASHGRID_HEARTBEAT_INTERVAL_S": "0.5",
    "HASHGRID_NODE_TTL_S": "5",
    "HASHGRID_RECONCILE_INTERVAL_S": "0.5",
}

CLIENT = """
import json, ssl, sys
import httpx
from openai import OpenAI
trusted = httpx.Client(verify=ssl.create_default_context(cafile=sys.argv[3]))
client = OpenAI(
    base_url=sys.argv[1], api_key=sys.argv[2], max_retries=0, timeout=60, http_client=trusted
)
chat = client.chat.completions.create(
    model="tiny-llama", messages=[{"role": "user", "content": "hi"}], max_tokens=4
)
stream = client.chat.completions.create(
    model="tiny-llama", messages=[{"role": "user", "content": "hi"}], max_tokens=6, stream=True,
    stream_options={"include_usage": True},
)
chunks = list(stream)
print(json.dumps({
    "chat_tokens": chat.usage.completion_tokens,
    "streamed": sum(1 for c in chunks if c.choices and c.choices[0].delta.content),
    "stream_tokens": chunks[-1].usage.completion_tokens,
}))
"""

PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print("open")
except OSError as e:
    print(type(e).__name__)
"""


@pytest.fixture
def site() -> Iterator[NatSite]:
    with NatSite() as nat:
        yield nat


def test_a_node_behind_nat_serves_the_openai_client_through_its_tunnel(
    site: NatSite, tiny_model: Path, tmp_path: Path
) -> None:
    ca_file = tmp_path / "server" / "server" / "tls" / "ca.pem"  # the control plane's CA
    env = {"HASHGRID_SERVER": SERVER, "HASHGRID_TOKEN": ADMIN, "HASHGRID_HOME": str(tmp_path),
           "HASHGRID_CA_FILE": str(ca_file)}  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []

    def hashgrid(*args: str) -> str:
        return site.run(site.public, "env", *[f"{k}={v}" for k, v in env.items()],
                        sys.executable, "-m", "hashgrid", *args)  # fmt: skip

    def python(ns: str, script: str, *args: str) -> str:
        return site.run(ns, sys.executable, "-c", script, *args).strip()

    try:
        procs.append(
            site.popen(
                site.public,
                [sys.executable, "-m", "hashgrid", "server", "--host", PUBLIC_IP, "--port", "7081",
                 "--home", str(tmp_path / "server"),
                 "--database-url", f"sqlite+aiosqlite:///{tmp_path / 'db'}"],
                tmp_path / "server.log",
                {"HASHGRID_BOOTSTRAP_ADMIN_TOKEN": ADMIN, **FAST},
            )
        )  # fmt: skip
        wait_until(lambda: _answers(site, f"{SERVER}/healthz", ca_file), 60, "the control plane")
        printed = re.search(r"CA (sha256:[0-9a-f]{64})", (tmp_path / "server.log").read_text())
        assert printed is not None
        ca_hash = printed.group(1)
        hashgrid("sites", "create", "mine-1", "--region", "us-south", "--country", "US",
                 "--power-mw", "1")  # fmt: skip
        join = hashgrid("sites", "join-token", "mine-1").strip().splitlines()[-1]
        hashgrid("orgs", "create", "acme", "--kind", "customer")
        key = hashgrid("keys", "create", "--customer", "acme").strip().splitlines()[-1]
        hashgrid("deploy", str(tiny_model), "--min", "1", "--max", "1")
        procs.append(
            site.popen(
                site.public,
                [sys.executable, "-m", "hashgrid", "gateway", "--server", SERVER, "--token", ADMIN,
                 "--host", PUBLIC_IP, "--port", "7080", "--tunnel-port", "7082",
                 "--ca-hash", ca_hash, "--home", str(tmp_path / "gateway")],
                tmp_path / "gateway.log",
            )
        )  # fmt: skip
        # The node: one command, on the site's LAN.
        agent_log = tmp_path / "agent.log"
        procs.append(
            site.popen(
                site.node,
                [sys.executable, "-m", "hashgrid", "agent", "--server", SERVER,
                 "--join-token", join, "--home", str(tmp_path / "agent")],
                agent_log,
            )
        )  # fmt: skip
        wait_until(
            lambda: _routable(site, ca_file), 120, "the node's replica routable at the gateway"
        )
        assert "wss://" in agent_log.read_text(), "the tunnel is TLS"
        # It served only once its benchmark passed verification.
        (node,) = json.loads(hashgrid("nodes", "list", "--json"))
        assert node["admission"] == "admitted", node

        answered = json.loads(python(site.public, CLIENT, f"{GATEWAY}/v1", key, str(ca_file)))
        assert answered["chat_tokens"] == 4
        assert answered["streamed"] == answered["stream_tokens"] == 6

        # Nothing on the node listens beyond its loopback: its engine included.
        listening = site.listening(site.node)
        assert listening, "the engine listens somewhere"
        assert all(a.startswith(("127.0.0.1:", "[::1]:")) for a in listening), listening
        engine_port = listening[0].rsplit(":", 1)[1]
        assert python(site.node, PROBE, "127.0.0.1", engine_port) == "open"
        # From outside, the router drops the attempt; from the site's LAN, nothing answers.
        assert python(site.public, PROBE, NODE_IP, engine_port) in ("TimeoutError", "timeout")
        assert python(site.router, PROBE, NODE_IP, engine_port) == "ConnectionRefusedError"

        # The tunnel cut (its socket reset): the agent dials again and the node serves on.
        opened = agent_log.read_text().count("tunnel open")
        site.run(site.node, "ss", "-K", "dst", PUBLIC_IP, "dport", "=", ":7082")
        wait_until(lambda: agent_log.read_text().count("tunnel open") > opened, 30, "a redial")
        answered = json.loads(python(site.public, CLIENT, f"{GATEWAY}/v1", key, str(ca_file)))
        assert answered["chat_tokens"] == 4
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


TRUSTING_GET = (
    "import httpx, ssl, sys; "
    "print(httpx.get(sys.argv[1], timeout=2, "
    "verify=ssl.create_default_context(cafile=sys.argv[2])).{}"
)


def _answers(site: NatSite, url: str, ca_file: Path) -> bool:
    if not ca_file.exists():
        return False
    script = TRUSTING_GET.format("status_code)")
    try:
        return (
            site.run(site.public, sys.executable, "-c", script, url, str(ca_file)).strip() == "200"
        )
    except AssertionError:
        return False


def _routable(site: NatSite, ca_file: Path) -> bool:
    script = TRUSTING_GET.format("text)")
    try:
        health = site.run(
            site.public, sys.executable, "-c", script, f"{GATEWAY}/healthz", str(ca_file)
        )
    except AssertionError:
        return False
    return bool(re.search(r'"tiny-llama":\s*[1-9]', health))
