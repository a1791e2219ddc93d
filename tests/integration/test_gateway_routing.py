"""Routing through a real gateway: two sites in different countries, each with a real agent and
a real llama.cpp engine on loopback, the RIPE Atlas RTT table, and the official `openai` client
with its own retries off, so every retry seen is the gateway's."""

import os
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import openai
import psutil
import pytest

from hashgrid.client import HashgridClient
from hashgrid.contracts.api.access import TokenCreate
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.sites import SiteCreate

from support.data import RIPE
from support.live import (
    AgentProcess,
    LiveGateway,
    LiveServer,
    admitted,
    server_settings,
    wait_until,
)

COUNTRY = "x-hashgrid-client-country"
MESSAGES = [{"role": "user", "content": "hello"}]


@dataclass
class TwoSites:
    server: LiveServer
    gateway: LiveGateway
    admin: HashgridClient
    agents: dict[str, AgentProcess]
    key: str

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.gateway.url}/v1", api_key=self.key, max_retries=0)

    def replica_at(self, site: str) -> tuple[str, int]:
        """The ready replica of `tiny` at `site`: its id and its engine's port."""
        site_of = {n.id: n.name for n in self.admin.list_nodes()}
        for r in self.admin.get_deployment("tiny").replica_list:
            if r.status == "ready" and site_of[r.node_id] == site and r.endpoint:
                return r.id, int(r.endpoint.rsplit(":", 1)[1])
        raise AssertionError(f"no ready replica at {site}")


@pytest.fixture(scope="module")
def two_sites(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoSites]:
    home = tmp_path_factory.mktemp("routing")
    server = LiveServer(server_settings(home / "server", f"sqlite+aiosqlite:///{home / 'db'}"))
    server.start()
    admin = server.client()
    admin.create_site(SiteCreate(name="nairobi", region="af-east", country="KE", power_mw=1.0))
    admin.create_site(SiteCreate(name="virginia", region="us-east", country="US", power_mw=1.0))
    admin.create_organization(OrganizationCreate(name="acme", kind="customer"))
    # Agents are named after their sites: one node per site.
    agents = {
        site: AgentProcess(server.url, home / site, admin.create_join_token(site).token, site)
        for site in ("nairobi", "virginia")
    }
    token = admin.create_token(TokenCreate(name="gw", role="gateway")).token
    gateway = LiveGateway(server.url, token, home / "gateway", rtt_table=RIPE)
    gateway.start()
    try:
        wait_until(lambda: admitted(admin) == 2, 60, "both agents to join and pass verification")
        admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        admin.deploy(DeploymentCreate(model="tiny", replicas=2))  # spread: one replica per site
        wait_until(lambda: gateway.ready_replicas("tiny") == 2, 90, "a replica at each site")
        yield TwoSites(
            server, gateway, admin, agents, admin.create_key(KeyCreate(customer="acme")).key
        )
    finally:
        gateway.stop()
        for agent in agents.values():
            if agent.proc.poll() is None:
                agent.terminate()
        admin.close()
        server.stop()


def served_from(client: openai.OpenAI, country: str) -> str:
    raw = client.chat.completions.with_raw_response.create(
        model="tiny", messages=MESSAGES, max_tokens=2, extra_headers={COUNTRY: country}
    )
    assert raw.parse().choices
    return raw.headers["x-hashgrid-site"]


def test_the_client_country_header_picks_the_nearer_site(two_sites: TwoSites) -> None:
    client = two_sites.client()
    assert served_from(client, "KE") == "nairobi"
    assert served_from(client, "ZA") == "nairobi"  # ZA-KE 79 ms, ZA-US 220 ms
    assert served_from(client, "US") == "virginia"
    assert served_from(client, "mx") == "virginia"


def test_a_bad_client_country_is_an_openai_400(two_sites: TwoSites) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        two_sites.client().chat.completions.create(
            model="tiny", messages=MESSAGES, max_tokens=2, extra_headers={COUNTRY: "Kenya"}
        )
    assert caught.value.status_code == 400
    assert COUNTRY in caught.value.message


@dataclass
class Load:
    """Kenyan clients sending steady requests, counting by site that served and by failure."""

    site: TwoSites
    served: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        client = self.site.client()
        for _ in range(2000):  # bounded, whatever happens
            if self.stop.is_set():
                return
            try:
                self.served[served_from(client, "KE")] += 1
            except openai.OpenAIError as e:
                self.failures.append(repr(e))


def test_killing_an_engine_under_load_fails_no_request_and_ejects_it(two_sites: TwoSites) -> None:
    replica_id, port = two_sites.replica_at("nairobi")
    load = Load(two_sites)
    workers = [threading.Thread(target=load.run) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        wait_until(lambda: load.served["nairobi"] >= 6, 60, "requests served in Nairobi")
        engine = next(
            p
            for p in psutil.Process(two_sites.agents["nairobi"].proc.pid).children(recursive=True)
            if str(port) in p.cmdline()
        )
        os.kill(engine.pid, signal.SIGKILL)
        wait_until(lambda: load.served["virginia"] >= 6, 60, "requests moved to Virginia")
        ejected = wait_until(
            lambda: replica_id in two_sites.gateway.health()["ejected"], 10, "the ejection"
        )
        assert ejected
    finally:
        load.stop.set()
        for w in workers:
            w.join(60)
    assert load.failures == [], f"client requests failed: {load.failures[:3]}"
