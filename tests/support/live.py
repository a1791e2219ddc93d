"""Real processes for tests: uvicorn servers on free ports, agents as subprocesses."""

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import httpx
import uvicorn

from hashgrid.agent.fingerprint import collect
from hashgrid.client import HashgridClient
from hashgrid.common.connection_limits import ConnectionLimits
from hashgrid.common.net import free_port
from hashgrid.common.serving import CertFiles, server_config
from hashgrid.common.tls import client_context
from hashgrid.contracts.agent import PROTOCOL_HEADER
from hashgrid.contracts.api.access import TokenCreate
from hashgrid.gateway.app import create_app as create_gateway
from hashgrid.gateway.settings import GatewaySettings
from hashgrid.gateway.trust import tunnel_url
from hashgrid.server.app import create_app as create_server
from hashgrid.server.pki.service import server_certificate
from hashgrid.server.settings import ServerSettings

from support.admission import admit

ADMIN_TOKEN = "hg_admin_test-token-for-tests-only"
KEEP_ALIVE_S = 75.0


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


async def eventually(check: Callable[[], bool], what: str, within_s: float = 20.0) -> None:
    """`wait_until` for async tests: polls without blocking the loop (where fakes may answer)."""
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


class ThreadedServer:
    """An ASGI app served by uvicorn on a free loopback port, in a background thread: as the
    processes serve it (common/serving.py) when given their `limits`."""

    def __init__(
        self,
        app: Any,
        port: int | None = None,
        limits: ConnectionLimits | None = None,
        tls: CertFiles | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        # Keep idle connections longer than a test waits between calls on one client: with
        # uvicorn's 5 s, a call made as the server closes its idle connection is reset.
        limits = limits or ConnectionLimits(keep_alive_s=KEEP_ALIVE_S)
        self._server = uvicorn.Server(server_config(app, "127.0.0.1", self.port, limits, tls))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        wait_until(lambda: self._server.started, 30, "uvicorn to start")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def server_settings(home: Path, database_url: str, **overrides: Any) -> ServerSettings:
    """Settings with short intervals, so liveness and placement act within a test's patience."""
    values: dict[str, Any] = {
        "home": home,
        "database_url": database_url,
        "bootstrap_admin_token": ADMIN_TOKEN,
        "heartbeat_interval_s": 0.5,
        "node_ttl_s": 3.0,
        "reconcile_interval_s": 0.5,
        "replica_retry_after_s": 5.0,
        "long_poll_max_s": 5.0,
        "keep_alive_s": KEEP_ALIVE_S,
        # Invoices are issued by the tests that issue them, not by the monthly pass.
        "invoice_grace_s": None,
        **overrides,
    }
    return ServerSettings(**values)


def admitted(admin: HashgridClient) -> int:
    """How many nodes are admitted: joined and verified, so placement may use them."""
    return sum(n.admission == "admitted" for n in admin.list_nodes())


class LiveServer(ThreadedServer):
    """The control plane; over HTTPS with its CA-issued certificate when `settings.tls_on`."""

    def __init__(self, settings: ServerSettings, port: int | None = None) -> None:
        app = create_server(settings)
        self.ca = app.state.ca  # common/ca.py's CertificateAuthority; None without TLS
        tls = server_certificate(settings, self.ca) if self.ca is not None else None
        super().__init__(app, port, settings, tls)
        self.settings = settings

    def verify(self) -> Any:
        """What a client verifies this server by: its CA alone, when it serves TLS."""
        return client_context(self.ca.cert_pem) if self.ca is not None else True

    def client(self, token: str | None = ADMIN_TOKEN) -> HashgridClient:
        return HashgridClient(self.url, token, verify=self.verify())

    def http(self, token: str | None = ADMIN_TOKEN) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, verify=self.verify())

    def join_node(
        self,
        site: str,
        name: str,
        gpus: list[dict[str, Any]] | None = None,
        *,
        verified: bool = True,
    ) -> httpx.Client:
        """A node joined to `site` through the agent protocol, with this machine's fingerprint
        (and `gpus`, as NVML on a GPU machine reports them, where given) and no engine: a client
        speaking as the node (its id in `x-node-id`, for the test). `verified`: it reported a
        real benchmark, as its agent would, and is admitted; else it is pending."""
        with self.client() as admin:
            token = admin.create_join_token(site).token
        fingerprint = collect().model_dump(mode="json")
        if gpus is not None:
            fingerprint["gpus"] = gpus
        body = {"join_token": token, "name": name, "fingerprint": fingerprint}
        with self.http(token=None) as http:
            joined: dict[str, Any] = http.post("/api/v1/agent/join", json=body).json()
        node = self.http(token=joined["credential"])
        node.headers[PROTOCOL_HEADER] = "1"
        node.headers["x-node-id"] = joined["node_id"]
        if verified:
            admit(node, fingerprint)
        return node


def beating(node: httpx.Client, stop: threading.Event) -> threading.Thread:
    """A node's heartbeats, as its agent would send them, until `stop` (for `join_node`'s)."""

    def beat() -> None:
        while not stop.wait(0.5):
            node.post("/api/v1/agent/heartbeat", json={})

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    return thread


class LiveGateway(ThreadedServer):
    def __init__(self, server_url: str, token: str, home: Path, **overrides: Any) -> None:
        values: dict[str, Any] = {
            "usage_flush_s": 0.2,
            "keep_alive_s": KEEP_ALIVE_S,
            "tunnel_port": free_port(),
            **overrides,
        }
        settings = GatewaySettings(server_url=server_url, token=token, home=home, **values)
        app = create_gateway(settings)
        self.tls = app.state.tls  # gateway/trust.py's GatewayTls
        serves = self.tls.certificate if settings.tls_on else None
        super().__init__(app, limits=settings, tls=serves)
        self.settings = settings

    def verify(self) -> Any:
        """What a client verifies this gateway by: the control plane's CA, when it serves TLS."""
        return client_context(self.tls.ca_pem) if self.url.startswith("https") else True

    @property
    def tunnel_url(self) -> str:
        """Where nodes dial this gateway (`wss://` when it has a certificate from the CA)."""
        return tunnel_url(self.settings, self.tls.certificate is not None)

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(
            f"{self.url}/healthz", timeout=5, verify=self.verify()
        ).json()
        return body

    def ready_replicas(self, model: str) -> int:
        return int(self.health().get("ready_replicas", {}).get(model, 0))


class GatewayProcess:
    """`hashgrid gateway` as a real subprocess, so that it can be killed without warning;
    `settings` are `GatewaySettings` fields, set through the environment."""

    def __init__(
        self,
        server_url: str,
        token: str,
        home: Path,
        port: int,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable, "-m", "hashgrid", "gateway", "--server", server_url,
            "--token", token, "--port", str(port), "--home", str(home),
        ]  # fmt: skip
        settings = {"tunnel_port": str(free_port()), **(settings or {})}
        env = {
            **os.environ,
            "NO_COLOR": "1",
            **{f"HASHGRID_GATEWAY_{k.upper()}": v for k, v in settings.items()},
        }
        with (home / "gateway.log").open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)

    def ready_replicas(self, model: str) -> int:
        """The replicas of `model` the gateway routes to; 0 also while it is not answering."""
        try:
            body = httpx.get(f"{self.url}/healthz", timeout=2).json()
        except httpx.HTTPError:
            return 0
        return int(body.get("ready_replicas", {}).get(model, 0))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


class AgentProcess:
    """`hashgrid agent` as a real subprocess, the way a node runs it."""

    def __init__(
        self,
        server_url: str,
        home: Path,
        join_token: str | None,
        name: str,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.home = home
        self.log_path = home / "agent-process.log"
        home.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable, "-m", "hashgrid", "agent", "--server", server_url, "--home", str(home),
            "--name", name,
        ]  # fmt: skip
        if join_token:
            args += ["--join-token", join_token]
        args += extra_args
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "NO_COLOR": "1", **(env or {})},
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


class LiveFleet:
    """A control plane on SQLite, with an admin client, the agents and the gateway a test adds;
    leaving the `with` block stops them all (gateway, agents, then the server)."""

    def __init__(self, tmp_path: Path, **server_overrides: Any) -> None:
        self.tmp_path = tmp_path
        db = f"sqlite+aiosqlite:///{tmp_path / 'db'}"
        self.server = LiveServer(server_settings(tmp_path / "server", db, **server_overrides))
        self.server.start()
        self.admin = self.server.client()
        self.agents: list[AgentProcess] = []
        self.gateway: LiveGateway | None = None

    def add_agent(
        self,
        site: str,
        name: str,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> AgentProcess:
        """A real agent joining `site` (its own home under the test's tmp_path)."""
        token = self.admin.create_join_token(site).token
        agent = AgentProcess(
            self.server.url, self.tmp_path / f"agent-{name}", token, name, extra_args, env
        )
        self.agents.append(agent)
        return agent

    def restart_agent(self, name: str) -> AgentProcess:
        """Agent `name` started again on its home, with its stored credential (a node back)."""
        agent = AgentProcess(self.server.url, self.tmp_path / f"agent-{name}", None, name)
        self.agents.append(agent)
        return agent

    def wait_for_nodes(self, count: int) -> None:
        """Until `count` nodes joined and passed their verification (admitted: placeable)."""
        wait_until(lambda: admitted(self.admin) == count, 60, f"{count} node(s) admitted")

    def start_gateway(self, **overrides: Any) -> LiveGateway:
        token = self.admin.create_token(TokenCreate(name="gw", role="gateway")).token
        self.gateway = LiveGateway(self.server.url, token, self.tmp_path / "gw", **overrides)
        self.gateway.start()
        return self.gateway

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        for agent in self.agents:
            if agent.proc.poll() is None:
                agent.terminate()
        self.admin.close()
        self.server.stop()
