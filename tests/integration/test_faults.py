"""Faults: the control plane goes away and comes back while agents, engines and gateways run;
an agent dies and a new one takes over its engines; an engine dies and its agent restarts it."""

import signal
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import cast

import httpx
import psutil
import pytest

from hashgrid.client import HashgridClient
from hashgrid.common.net import free_port
from hashgrid.contracts.api.access import TokenCreate
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate, ReplicaOut
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.sites import SiteCreate

from support.engines import engines_of, engines_on_port
from support.live import (
    AgentProcess,
    GatewayProcess,
    LiveGateway,
    LiveServer,
    server_settings,
    wait_until,
)

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def _engines_of(agent: AgentProcess) -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process(agent.proc.pid).children(recursive=True)
        if "llamacpp_server" in " ".join(p.cmdline())
    ]


def test_engines_and_gateway_keep_serving_while_the_control_plane_is_away(
    tiny_model: Path, tmp_path: Path
) -> None:
    settings = server_settings(tmp_path / "server", f"sqlite+aiosqlite:///{tmp_path / 'db'}")
    server = LiveServer(settings)
    server.start()
    admin = server.client()
    admin.create_site(SiteCreate(name="local", region="us-south", country="US", power_mw=1.0))
    admin.create_organization(OrganizationCreate(name="acme", kind="customer"))
    admin.add_model(
        ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
    )
    admin.deploy(DeploymentCreate(model="tiny"))
    key = admin.create_key(KeyCreate(customer="acme")).key
    gateway_token = admin.create_token(TokenCreate(name="gw", role="gateway")).token
    gateway = LiveGateway(server.url, gateway_token, tmp_path / "gw")
    gateway.start()
    agent = AgentProcess(
        server.url, tmp_path / "agent", admin.create_join_token("local").token, "n"
    )
    headers = {"authorization": f"Bearer {key}"}
    try:
        wait_until(lambda: gateway.ready_replicas("tiny") == 1, 60, "a routable replica")
        engines = _engines_of(agent)
        assert len(engines) == 1
        admin.close()
        server.stop()

        # Away: the gateway routes from its last view, the engine serves, usage is spooled.
        def chat(i: int) -> None:
            r = httpx.post(
                f"{gateway.url}/v1/chat/completions",
                json=CHAT,
                headers={**headers, "x-request-id": f"away-{i}"},
                timeout=30,
            )
            assert r.status_code == 200, r.text

        for i in range(2):
            chat(i)
        # A gateway restarted while the server is away serves from the view it saved, its node
        # dialling it again where it was.
        gateway.stop()
        tunnel_port = gateway.settings.tunnel_port
        gateway = LiveGateway(server.url, gateway_token, tmp_path / "gw", tunnel_port=tunnel_port)
        gateway.start()
        chat(2)
        assert agent.proc.poll() is None

        with LiveServer(settings, port=server.port) as back:
            with back.client() as again:
                wait_until(
                    lambda: (
                        {"away-0", "away-1", "away-2"}
                        <= {u.client_request_id for u in again.usage()}
                    ),
                    30,
                    "the spooled usage to arrive",
                )
                assert (
                    len(
                        [
                            u
                            for u in again.usage()
                            if (u.client_request_id or "").startswith("away-")
                        ]
                    )
                    == 3
                )
                wait_until(
                    lambda: again.list_nodes()[0].status == "ready", 30, "the node to beat again"
                )
                assert again.get_deployment("tiny").ready_replicas == 1
            # Re-synced, not restarted: the same single engine process.
            assert [p.pid for p in _engines_of(agent)] == [e.pid for e in engines]
    finally:
        gateway.stop()
        agent.terminate()


# --- the agent dies, the engine does not -----------------------------------------------------


class Traffic:
    """Chat completions sent one after another to an engine, from a thread, until stopped."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.answers: list[int | str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                try:
                    r = http.post(f"{self.endpoint}/v1/chat/completions", json=CHAT)
                    self.answers.append(r.status_code)
                except httpx.HTTPError as e:
                    self.answers.append(repr(e))

    def stop(self) -> list[int | str]:
        self._stop.set()
        self._thread.join(60)
        return self.answers


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def _the_replica(admin: HashgridClient) -> ReplicaOut:
    [replica] = admin.get_deployment("tiny").replica_list
    return replica


def _ready_replica(admin: HashgridClient) -> ReplicaOut:
    def ready() -> ReplicaOut | None:
        replicas = admin.get_deployment("tiny").replica_list
        return next((r for r in replicas if r.status == "ready"), None)

    return cast(ReplicaOut, wait_until(ready, 60, "a ready replica"))


def _gone(proc: psutil.Process) -> bool:
    """Exited: an orphan's zombie lingers here, where the init process reaps none."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _clean_up(admin: HashgridClient, *agents: AgentProcess | None) -> None:
    for agent in agents:
        if agent is not None and agent.proc.poll() is None:
            agent.terminate()
    admin.close()


def _deploy_tiny(server: LiveServer, tiny_model: Path) -> HashgridClient:
    admin = server.client()
    admin.create_site(SiteCreate(name="local", region="us-south", country="US", power_mw=1.0))
    admin.add_model(
        ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
    )
    admin.deploy(DeploymentCreate(model="tiny"))
    return admin


@pytest.fixture
def patient_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A control plane whose node TTL outlasts an agent's restart, as in production."""
    db = f"sqlite+aiosqlite:///{tmp_path / 'db'}"
    with LiveServer(server_settings(tmp_path / "server", db, node_ttl_s=30.0)) as live:
        yield live


def test_killed_agent_is_restarted_and_adopts_its_engine_which_serves_throughout(
    patient_server: LiveServer, tiny_model: Path, tmp_path: Path
) -> None:
    home = tmp_path / "agent"
    admin = _deploy_tiny(patient_server, tiny_model)
    first = AgentProcess(patient_server.url, home, admin.create_join_token("local").token, "n")
    second: AgentProcess | None = None
    try:
        before = _ready_replica(admin)
        assert before.endpoint is not None
        [engine] = engines_on_port(_port(before.endpoint))
        traffic = Traffic(before.endpoint)

        first.kill()
        assert engine.is_running()
        second = AgentProcess(patient_server.url, home, None, "n")
        wait_until(
            lambda: _the_replica(admin).updated_at > before.updated_at,
            60,
            "the new agent to report the adopted engine",
        )
        wait_until(lambda: len(traffic.answers) > 3, 30, "requests after the restart")
        answers = traffic.stop()

        assert set(answers) == {200}, f"the engine stopped serving: {answers}"
        after = _the_replica(admin)
        assert (after.id, after.status, after.endpoint) == (before.id, "ready", before.endpoint)
        assert [p.pid for p in engines_on_port(_port(before.endpoint))] == [engine.pid]
        assert [p.pid for p in engines_of(home)] == [engine.pid]
        assert second.log().count("engine adopted") == 1
        assert (home / "engines" / f"{before.id}.json").exists()

        assert second.terminate() == 0, second.log()
        assert _gone(engine)
        assert not (home / "engines" / f"{before.id}.json").exists()
    finally:
        _clean_up(admin, first, second)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_restarted_agent_stops_the_engine_of_a_replica_moved_while_it_was_down(
    server: LiveServer, tiny_model: Path, tmp_path: Path
) -> None:
    """The node was lost while its agent was down: the engine it left is stopped, not adopted."""
    home = tmp_path / "agent"
    admin = _deploy_tiny(server, tiny_model)
    first = AgentProcess(server.url, home, admin.create_join_token("local").token, "n")
    second: AgentProcess | None = None
    try:
        before = _ready_replica(admin)
        assert before.endpoint is not None
        [engine] = engines_of(home)
        first.kill()
        wait_until(lambda: admin.list_nodes()[0].status == "lost", 30, "the node to be lost")
        assert engine.is_running()  # left for an agent to adopt or stop

        second = AgentProcess(server.url, home, None, "n")
        wait_until(lambda: _ready_replica(admin).id != before.id, 90, "a new replica")
        assert _ready_replica(admin).endpoint != before.endpoint
        wait_until(lambda: _gone(engine), 30, "the engine left behind to stop")
        assert engines_on_port(_port(before.endpoint)) == []
        assert not (home / "engines" / f"{before.id}.json").exists()
        assert len(engines_of(home)) == 1
    finally:
        _clean_up(admin, first, second)


# --- the engine dies -----------------------------------------------------------------------

# A first restart after 1.5 to 3 s, so that the control plane's `failed` is there to be seen;
# the test server gives up on a failed replica after 5 s.
SLOW_RESTART = {"HASHGRID_AGENT_ENGINE_RESTART_S": "3"}


def _failure(admin: HashgridClient) -> ReplicaOut:
    return cast(
        ReplicaOut,
        wait_until(lambda: admin.get_deployment("tiny").recent_failures, 60, "a failure")[0],
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_killed_engine_is_reported_with_its_log_and_restarted_in_place(
    server: LiveServer, tiny_model: Path, tmp_path: Path
) -> None:
    home = tmp_path / "agent"
    admin = _deploy_tiny(server, tiny_model)
    token = admin.create_join_token("local").token
    agent = AgentProcess(server.url, home, token, "n", env=SLOW_RESTART)
    try:
        before = _ready_replica(admin)
        [engine] = engines_of(home)
        engine.send_signal(signal.SIGKILL)

        failure = _failure(admin)
        assert (failure.id, failure.node_id) == (before.id, before.node_id)
        assert failure.reason is not None
        assert failure.reason.startswith("restart 1 in ")
        assert "engine exited with code -9; last log lines:\n" in failure.reason
        again = _ready_replica(admin)
        assert (again.id, again.node_id) == (before.id, before.node_id)
        [restarted] = engines_of(home)
        assert restarted.pid != engine.pid
        assert again.endpoint is not None
        assert httpx.post(f"{again.endpoint}/v1/chat/completions", json=CHAT, timeout=30).is_success
    finally:
        _clean_up(admin, agent)


def test_engine_that_died_while_its_agent_was_down_is_reported_and_restarted(
    patient_server: LiveServer, tiny_model: Path, tmp_path: Path
) -> None:
    home = tmp_path / "agent"
    server = patient_server
    admin = _deploy_tiny(server, tiny_model)
    first = AgentProcess(server.url, home, admin.create_join_token("local").token, "n")
    second: AgentProcess | None = None
    try:
        before = _ready_replica(admin)
        [engine] = engines_of(home)
        first.kill()
        engine.send_signal(signal.SIGKILL)
        wait_until(lambda: _gone(engine), 10, "the engine to die")

        second = AgentProcess(server.url, home, None, "n", env=SLOW_RESTART)
        failure = _failure(admin)
        assert failure.id == before.id
        assert failure.reason is not None
        assert "restart 1 in " in failure.reason
        assert "engine exited while no agent watched it" in failure.reason
        assert _ready_replica(admin).id == before.id
        assert len(engines_of(home)) == 1
        assert "engine adopted" not in second.log()
    finally:
        _clean_up(admin, first, second)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_replica_its_agent_cannot_bring_back_is_moved_with_the_failure_as_reason(
    server: LiveServer, tmp_path: Path
) -> None:
    """Still failed after `replica_retry_after_s` (5 s here; the agent waits 6 to 12 s before
    its first restart): placement gives up on it there and places a new replica."""
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF but not really a model")
    home = tmp_path / "agent"
    admin = server.client()
    admin.create_site(SiteCreate(name="local", region="us-south", country="US", power_mw=1.0))
    admin.add_model(
        ModelCreate(name="broken", source=str(broken), size_bytes=broken.stat().st_size)
    )
    admin.deploy(DeploymentCreate(model="broken"))
    token = admin.create_join_token("local").token
    agent = AgentProcess(
        server.url, home, token, "n", env={"HASHGRID_AGENT_ENGINE_RESTART_S": "12"}
    )
    try:
        with server.http() as http:

            def stopped() -> list[dict[str, str]]:
                answer = http.get("/api/v1/replicas", params={"status": "stopped"})
                return list(answer.json())

            [moved] = wait_until(stopped, 60, "the failed replica to be moved")
        assert moved["reason"].startswith("kept failing on its node; last failure: restart 1 in ")
        assert "last log lines" in moved["reason"]
        replacement = wait_until(
            lambda: admin.get_deployment("broken").replica_list, 30, "a new replica"
        )[0]
        assert replacement.id != moved["id"]
    finally:
        _clean_up(admin, agent)


# --- the gateway is killed with SIGKILL mid-load ---------------------------------------------


class Clients:
    """Threads posting chat completions, each with its own request ids, until stopped; they
    keep the ids of the requests whose answer arrived whole."""

    def __init__(self, url: str, key: str, threads: int) -> None:
        self.answered: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(url, key, t), daemon=True)
            for t in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, url: str, key: str, t: int) -> None:
        n = 0
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                rid = f"kill-{t}-{n}"
                n += 1
                try:
                    r = http.post(
                        f"{url}/v1/chat/completions",
                        json=CHAT,
                        headers={"authorization": f"Bearer {key}", "x-request-id": rid},
                    )
                    r.read()
                except httpx.HTTPError:
                    continue
                self.answered.append(rid)

    def stop(self) -> list[str]:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        return self.answered


def test_gateway_killed_with_sigkill_under_load_loses_and_duplicates_no_usage(
    tiny_model: Path, tmp_path: Path
) -> None:
    """Every request a client saw answered has exactly one usage record at the control plane
    once the killed gateway is restarted on the same spool."""
    server = LiveServer(
        server_settings(tmp_path / "server", f"sqlite+aiosqlite:///{tmp_path / 'db'}")
    )
    server.start()
    admin = _deploy_tiny(server, tiny_model)
    admin.create_organization(OrganizationCreate(name="acme", kind="customer"))
    key = admin.create_key(KeyCreate(customer="acme")).key
    token = admin.create_token(TokenCreate(name="gw", role="gateway")).token
    agent = AgentProcess(
        server.url, tmp_path / "agent", admin.create_join_token("local").token, "n"
    )
    port = free_port()
    # Small batches shipped often: some are acknowledged before the kill, some are not.
    often = {"usage_batch_size": "4", "usage_flush_s": "0.3"}
    gateway = GatewayProcess(server.url, token, tmp_path / "gw", port, often)
    restarted: GatewayProcess | None = None
    try:
        wait_until(partial(gateway.ready_replicas, "tiny"), 60, "a routable replica at the gateway")
        clients = Clients(gateway.url, key, threads=4)
        wait_until(lambda: len(clients.answered) >= 40, 60, "answers before the kill")
        gateway.proc.send_signal(signal.SIGKILL)
        gateway.proc.wait(10)
        answered = clients.stop()

        restarted = GatewayProcess(server.url, token, tmp_path / "gw", port, often)
        wait_until(partial(restarted.ready_replicas, "tiny"), 60, "the restarted gateway")
        after = [f"after-{i}" for i in range(3)]
        for rid in after:
            r = httpx.post(
                f"{restarted.url}/v1/chat/completions",
                json=CHAT,
                headers={"authorization": f"Bearer {key}", "x-request-id": rid},
                timeout=30,
            )
            assert r.status_code == 200, r.text
        wanted = set(answered) | set(after)

        def stored() -> list[str] | None:
            ids = [u.client_request_id for u in admin.usage(limit=10_000)]
            return ids if wanted <= set(ids) else None

        ids = wait_until(stored, 30, "every answered request's usage at the control plane")
        assert len(ids) == len(set(ids)), "one record per request id"
        assert all(i and i.startswith(("kill-", "after-")) for i in ids)
    finally:
        for proc in (gateway, restarted):
            if proc is not None:
                proc.stop()
        _clean_up(admin, agent)
        server.stop()
