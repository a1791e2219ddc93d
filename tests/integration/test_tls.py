"""TLS on every hop: the control plane serves HTTPS as its fleet's CA; agents pin that CA from
their join token; gateways get a certificate with their token; each refuses the others' peers
that a plain or foreign-CA client would be."""

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hashgrid.agent import registration
from hashgrid.agent import trust as agent_trust
from hashgrid.agent.control_plane import ControlPlane, Rejected
from hashgrid.agent.fingerprint import collect
from hashgrid.agent.settings import AgentSettings
from hashgrid.common.ca import load_or_create_ca
from hashgrid.common.net import free_port
from hashgrid.common.tls import (
    UntrustedCA,
    ca_hash,
    client_context,
    split_join_token,
    with_ca_hash,
)
from hashgrid.contracts.agent import PROTOCOL_HEADER
from hashgrid.contracts.api.access import Role, TokenCreate
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.sites import SiteCreate
from hashgrid.gateway import trust as gateway_trust
from hashgrid.gateway.settings import GatewaySettings

from support.cli import PASSWORD, base_env, ok, one_line_error
from support.live import (
    ADMIN_TOKEN,
    AgentProcess,
    LiveFleet,
    LiveGateway,
    LiveServer,
    server_settings,
    wait_until,
)

SITE = "tx-west"
THREE = {"max_tokens": 3}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """A control plane serving HTTPS on loopback (`tls`), with a site to join."""
    db = f"sqlite+aiosqlite:///{tmp_path / 'db'}"
    with LiveServer(server_settings(tmp_path / "server", db, tls=True)) as live:
        with live.client() as admin:
            admin.create_site(SiteCreate(name=SITE, region="us-south", country="US", power_mw=1))
        yield live


def _join_token(server: LiveServer) -> str:
    with server.client() as admin:
        return admin.create_join_token(SITE).token


def test_server_serves_https_with_a_certificate_from_its_own_ca(server: LiveServer) -> None:
    assert server.url.startswith("https://")
    r = httpx.get(f"{server.url}/healthz", verify=server.verify())
    assert r.status_code == 200
    ca = httpx.get(f"{server.url}/api/v1/ca", verify=server.verify())
    assert ca.headers["content-type"] == "application/x-pem-file"
    assert server.ca is not None
    assert ca_hash(ca.content) == server.ca.hash
    key = server.settings.tls_dir / "ca-key.pem"
    assert key.stat().st_mode & 0o777 == 0o600


def test_plain_http_and_a_client_trusting_another_ca_are_refused(
    server: LiveServer, tmp_path: Path
) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
    other = load_or_create_ca(tmp_path / "other-ca")
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{server.url}/healthz", verify=client_context(other.cert_pem), timeout=5)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{server.url}/healthz", timeout=5)  # the system's store knows it not


def test_join_token_carries_the_hash_of_the_servers_ca(server: LiveServer) -> None:
    _, carried = split_join_token(_join_token(server))
    assert server.ca is not None
    assert carried == server.ca.hash


def test_agent_joins_over_tls_pinning_the_ca_from_its_join_token(
    server: LiveServer, tmp_path: Path
) -> None:
    """One command (server URL and join token) joins; the CA is pinned under the agent's home,
    and a later start trusts that pin alone (no token, no hash)."""
    home = tmp_path / "agent"
    agent = AgentProcess(server.url, home, _join_token(server), "rig-1")
    try:
        with server.client() as admin:
            wait_until(lambda: [n.status for n in admin.list_nodes()] == ["ready"], 60, "the node")
        assert server.ca is not None
        assert ca_hash((home / "ca.pem").read_bytes()) == server.ca.hash
        assert (home / "ca.pem").stat().st_mode & 0o777 == 0o600
    finally:
        assert agent.terminate() == 0, agent.log()


def test_agent_refuses_a_ca_whose_hash_differs_from_its_join_tokens(
    server: LiveServer, tmp_path: Path
) -> None:
    secret, _ = split_join_token(_join_token(server))
    stranger = load_or_create_ca(tmp_path / "stranger")
    home = tmp_path / "agent"
    agent = AgentProcess(server.url, home, with_ca_hash(secret, stranger.hash), "rig-1")
    assert agent.proc.wait(60) == 1
    assert "refusing to trust it" in agent.log()
    assert not (home / "ca.pem").exists()
    assert not (home / "credential.json").exists()  # the token was never sent
    with server.client() as admin:
        assert admin.list_nodes() == []


def test_agent_will_not_send_a_tls_join_token_over_plain_http(
    server: LiveServer, tmp_path: Path
) -> None:
    plain = server.url.replace("https://", "http://")
    agent = AgentProcess(plain, tmp_path / "agent", _join_token(server), "rig-1")
    assert agent.proc.wait(60) == 1
    assert "use its https:// URL" in agent.log()
    with server.client() as admin:
        assert admin.list_nodes() == []


def test_agent_with_an_https_server_and_no_ca_hash_says_how_to_get_one(
    server: LiveServer, tmp_path: Path
) -> None:
    secret, _ = split_join_token(_join_token(server))
    agent = AgentProcess(server.url, tmp_path / "agent", secret, "rig-1")
    assert agent.proc.wait(60) == 1
    assert "--ca-hash" in agent.log()


async def test_a_revoked_node_cannot_reconnect_over_tls(server: LiveServer, tmp_path: Path) -> None:
    settings = AgentSettings(
        server_url=server.url, join_token=_join_token(server), home=tmp_path, name="rig-1"
    )
    control_plane = ControlPlane(
        server.url, ssl_context=agent_trust.control_plane_context(settings)
    )
    try:
        identity = await registration.join(control_plane, settings, collect())
        control_plane.use_credential(identity.credential)
        assert (await control_plane.heartbeat(None)).node_id == identity.node_id
        with server.http() as admin:
            assert admin.post(f"/api/v1/nodes/{identity.node_id}/revoke").status_code == 200
        with pytest.raises(Rejected) as refused:
            await control_plane.heartbeat(None)
        assert refused.value.status == 401
    finally:
        await control_plane.close()
    again = AgentProcess(server.url, tmp_path, None, "rig-1")  # its stored credential and pin
    assert again.proc.wait(60) != 0
    assert "unknown node credential" in again.log()


def test_agent_rotates_its_credential_over_tls_and_the_old_one_stops_working(
    server: LiveServer, tmp_path: Path
) -> None:
    home = tmp_path / "agent"
    rotate = {"HASHGRID_AGENT_CREDENTIAL_ROTATE_S": "3"}
    agent = AgentProcess(server.url, home, _join_token(server), "rig-1", env=rotate)
    try:
        first = wait_until(lambda: _credential(home), 60, "the first credential")
        wait_until(lambda: _credential(home) not in (None, first), 60, "a rotated credential")
        with server.http(token=first) as old:
            r = old.post("/api/v1/agent/heartbeat", json={}, headers={PROTOCOL_HEADER: "1"})
            assert r.status_code == 401
        with server.client() as admin:
            wait_until(lambda: [n.status for n in admin.list_nodes()] == ["ready"], 30, "ready")
    finally:
        assert agent.terminate() == 0, agent.log()
    assert "node credential rotated" in agent.log()


def _credential(home: Path) -> str | None:
    try:
        return str(json.loads((home / "credential.json").read_text())["credential"])
    except (OSError, ValueError, KeyError):
        return None


def test_gateway_serves_https_from_the_ca_and_reads_its_view_over_tls(
    server: LiveServer, tmp_path: Path
) -> None:
    """Trusting the CA by hash (fetched and pinned), with a gateway token: its certificate
    comes from the control plane's CA, its view over TLS."""
    assert server.ca is not None
    with server.client() as admin:
        token = admin.create_token(TokenCreate(name="gw", role=Role.GATEWAY)).token
    home = tmp_path / "gw"
    with LiveGateway(server.url, token, home, tls=True, ca_hash=server.ca.hash) as gateway:
        assert gateway.url.startswith("https://")
        wait_until(lambda: gateway.health()["status"] == "ok", 30, "the first view")
        assert ca_hash((home / "ca.pem").read_bytes()) == server.ca.hash
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{gateway.port}/healthz", timeout=5)


def test_gateway_without_a_valid_token_gets_no_certificate(
    server: LiveServer, tmp_path: Path
) -> None:
    assert server.ca is not None
    settings = GatewaySettings(
        server_url=server.url,
        token="hg_gw_not-a-token",
        home=tmp_path / "gw",
        tls=True,
        ca_hash=server.ca.hash,
    )
    with pytest.raises(gateway_trust.NoCertificate, match="refused a certificate: 401"):
        gateway_trust.prepare(settings)
    assert not (tmp_path / "gw" / "tls" / "gateway.pem").exists()
    with server.http(token="hg_gw_not-a-token") as stranger:
        assert stranger.get("/api/v1/gateway/view").status_code == 401
    with server.http(token=None) as anonymous:
        r = anonymous.post("/api/v1/gateway/certificate", json={"csr": "x"})
        assert r.status_code == 401


def test_gateway_refuses_a_control_plane_whose_ca_hash_differs(
    server: LiveServer, tmp_path: Path
) -> None:
    stranger = load_or_create_ca(tmp_path / "stranger")
    settings = GatewaySettings(
        server_url=server.url, token="unused", home=tmp_path / "gw", ca_hash=stranger.hash
    )
    with pytest.raises(UntrustedCA):
        gateway_trust.prepare(settings)


def test_tunnel_contexts_let_an_agent_reach_a_gateway_of_its_ca_only(
    server: LiveServer, tmp_path: Path
) -> None:
    """The contexts the tunnel uses: the gateway's listener, and the agent's client that
    verifies it against the CA pinned at join (a gateway of another CA is refused)."""
    assert server.ca is not None
    with server.client() as admin:
        token = admin.create_token(TokenCreate(name="gw", role=Role.GATEWAY)).token
    gateway = gateway_trust.prepare(
        GatewaySettings(
            server_url=server.url, token=token, home=tmp_path / "gw", ca_hash=server.ca.hash
        )
    )
    listener = gateway.tunnel_server_context()
    assert listener is not None
    agent = AgentSettings(
        server_url=server.url, join_token=_join_token(server), home=tmp_path / "agent"
    )
    assert _handshake(listener, agent_trust.gateway_client_context(agent)) == b"ok"

    foreign = load_or_create_ca(tmp_path / "foreign")
    (tmp_path / "foreign-agent").mkdir()
    (tmp_path / "foreign-agent" / "ca.pem").write_bytes(foreign.cert_pem)
    misled = AgentSettings(server_url=server.url, home=tmp_path / "foreign-agent")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(listener, agent_trust.gateway_client_context(misled))


def _handshake(server_side: ssl.SSLContext, client_side: ssl.SSLContext) -> bytes:
    """One TLS connection on loopback between the two contexts; what the server sent."""
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))

    def accept() -> None:
        conn, _ = listener.accept()
        try:
            with server_side.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            client_side.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            return tls.recv(2)
    finally:
        listener.close()
        thread.join(5)


def test_a_completion_crosses_every_hop_over_tls(tiny_model: Path, tmp_path: Path) -> None:
    """Client -> gateway (HTTPS), gateway -> node (the agent's tunnel, wss:// verified against
    the CA pinned at join), agent and gateway -> control plane (HTTPS): a real agent serves the
    tiny model through all of them."""
    with LiveFleet(tmp_path, tls=True) as fleet:
        server, admin = fleet.server, fleet.admin
        assert server.ca is not None
        admin.create_site(SiteCreate(name=SITE, region="us-south", country="US", power_mw=1))
        admin.create_organization(OrganizationCreate(name="acme", kind="customer"))
        key = admin.create_key(KeyCreate(customer="acme")).key
        admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        admin.deploy(DeploymentCreate(model="tiny", replicas=1))
        fleet.add_agent(SITE, "rig-1")
        gateway = fleet.start_gateway(tls=True, ca_hash=server.ca.hash)
        assert gateway.url.startswith("https://")
        assert gateway.tunnel_url.startswith("wss://")
        wait_until(lambda: gateway.ready_replicas("tiny") == 1, 120, "the replica, tunnelled")
        r = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={
                "model": "tiny",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 3,
            },
            headers={"authorization": f"Bearer {key}"},
            timeout=60,
            verify=gateway.verify(),
        )
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["completion_tokens"] == 3


def test_cli_trusts_a_ca_file_or_the_one_login_pinned_by_hash_and_no_other(
    server: LiveServer, tmp_path: Path
) -> None:
    assert server.ca is not None
    admin = base_env(
        HASHGRID_HOME=str(tmp_path / "admin"),
        HASHGRID_SERVER=server.url,
        HASHGRID_TOKEN=ADMIN_TOKEN,
    )
    assert "does not trust" in one_line_error("sites", "list", env=admin)
    ca_file = str(server.settings.tls_dir / "ca.pem")
    assert SITE in ok("sites", "list", "--ca-file", ca_file, env=admin)

    first = base_env(HASHGRID_HOME=str(tmp_path / "first"))
    ok(
        "signup", "--server", server.url, "--email", "ada@acme.example", "--organization",
        "acme", "--kind", "customer", "--password-stdin", "--ca-file", ca_file,
        env=first, stdin=PASSWORD + "\n",
    )  # fmt: skip

    laptop = base_env(HASHGRID_HOME=str(tmp_path / "laptop"))
    login = ["login", "--server", server.url, "--email", "ada@acme.example", "--password-stdin"]
    stranger = load_or_create_ca(tmp_path / "stranger")
    refused = one_line_error(*login, "--ca-hash", stranger.hash, env=laptop, stdin=PASSWORD)
    assert "refusing to trust it" in refused
    ok(*login, "--ca-hash", server.ca.hash, env=laptop, stdin=PASSWORD + "\n")
    assert ca_hash((tmp_path / "laptop" / "ca.pem").read_bytes()) == server.ca.hash
    assert "ada@acme.example" in ok("whoami", env=laptop)  # the pin, with no option
