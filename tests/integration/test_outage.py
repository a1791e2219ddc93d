"""A control plane outage: the server process stops for a minute and starts again on the same
database. Its nodes beat it again within the grace it gives them, so no node is lost and no
replica is replaced: the same engine process serves on, as it did while the server was away."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from hashgrid.client import HashgridClient
from hashgrid.common.net import free_port
from hashgrid.contracts.api.access import TokenCreate
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.sites import SiteCreate

from support.engines import engines_of
from support.live import ADMIN_TOKEN, AgentProcess, LiveGateway, wait_until

OUTAGE_S = 60.0
# The test fixtures' short liveness settings: a node silent for 3 s is lost. The agent's retry
# delay reached 30 s in a minute-long outage, ten TTLs.
NODE_TTL_S = 3.0
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


class ServerProcess:
    """`hashgrid server` as a real subprocess on a fixed port, database and home."""

    def __init__(self, home: Path, database_url: str, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        home.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "NO_COLOR": "1",
            "HASHGRID_DATABASE_URL": database_url,
            "HASHGRID_BOOTSTRAP_ADMIN_TOKEN": ADMIN_TOKEN,
            "HASHGRID_HEARTBEAT_INTERVAL_S": "0.5",
            "HASHGRID_NODE_TTL_S": str(NODE_TTL_S),
            "HASHGRID_RECONCILE_INTERVAL_S": "0.5",
            "HASHGRID_LONG_POLL_MAX_S": "5",
        }
        args = [sys.executable, "-m", "hashgrid", "server", "--home", str(home)]
        with (home / "server.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [*args, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env
            )
        self.client = HashgridClient(self.url, ADMIN_TOKEN)
        wait_until(self.client.healthy, 60, "the control plane to start")

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def test_a_minute_long_control_plane_outage_replaces_no_replica(
    tiny_model: Path, tmp_path: Path
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'db'}"
    port = free_port()
    server = ServerProcess(tmp_path / "server", database_url, port)
    admin = server.client
    admin.create_site(SiteCreate(name="local", region="us-south", country="US", power_mw=1.0))
    admin.create_organization(OrganizationCreate(name="acme", kind="customer"))
    admin.add_model(
        ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
    )
    admin.deploy(DeploymentCreate(model="tiny"))
    key = admin.create_key(KeyCreate(customer="acme")).key
    gateway = LiveGateway(
        server.url,
        admin.create_token(TokenCreate(name="gw", role="gateway")).token,
        tmp_path / "gw",
    )
    gateway.start()
    agent = AgentProcess(
        server.url, tmp_path / "agent", admin.create_join_token("local").token, "n"
    )
    headers = {"authorization": f"Bearer {key}"}
    try:
        wait_until(lambda: gateway.ready_replicas("tiny") == 1, 90, "a routable replica")
        [node] = admin.list_nodes()
        [replica] = admin.get_deployment("tiny").replica_list
        engines = [p.pid for p in engines_of(agent.home)]
        assert len(engines) == 1
        reachable = "control plane reachable again"
        returns = agent.log().count(reachable)
        server.stop()

        time.sleep(OUTAGE_S)  # long enough for the agent's retry delay to reach its cap
        assert agent.proc.poll() is None

        server = ServerProcess(tmp_path / "server", database_url, port)
        admin = server.client
        wait_until(
            lambda: agent.log().count(reachable) > returns, 30, "the agent to beat the server again"
        )
        # Two TTLs after the node's first beat: had it come back late, the server would have
        # declared it lost by now (the liveness pass runs every half second).
        time.sleep(2 * NODE_TTL_S)

        [after] = admin.list_nodes()
        assert after.status == "ready"
        assert after.status_changed_at == node.status_changed_at, "the node was lost meanwhile"
        [kept] = admin.get_deployment("tiny").replica_list
        assert (kept.id, kept.status) == (replica.id, "ready")
        assert [p.pid for p in engines_of(agent.home)] == engines
        assert kept.endpoint is not None
        direct = httpx.post(f"{kept.endpoint}/v1/chat/completions", json=CHAT, timeout=30)
        assert direct.status_code == 200, direct.text
        routed = httpx.post(
            f"{gateway.url}/v1/chat/completions", json=CHAT, headers=headers, timeout=30
        )
        assert routed.status_code == 200, routed.text
    finally:
        gateway.stop()
        agent.terminate()
        server.stop()
