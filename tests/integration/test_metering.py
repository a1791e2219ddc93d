"""Metering through real gateways: requests that leave hostile records and nodes that report
impossible token counts never stop usage shipping, and a stream cut by a gateway killed with
SIGKILL is billed, once, for what reached its client."""

import signal
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from hashgrid.client import HashgridClient
from hashgrid.common.net import free_port
from hashgrid.contracts.api.access import TokenCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.sites import SiteCreate
from hashgrid.contracts.api.usage import UsageOut

from support.live import GatewayProcess, LiveGateway, LiveServer, wait_until
from support.upstream import PacedUpstream

MESSAGES = [{"role": "user", "content": "hello"}]


def serve(upstream: PacedUpstream) -> Iterator[PacedUpstream]:
    upstream.server.start()
    try:
        yield upstream
    finally:
        upstream.server.stop()


@pytest.fixture
def honest() -> Iterator[PacedUpstream]:
    yield from serve(PacedUpstream(tokens=3))


@pytest.fixture
def liar() -> Iterator[PacedUpstream]:
    """An engine whose counts are a negative prompt and a completion past 32 bits."""
    yield from serve(PacedUpstream(usage={"prompt_tokens": -100_000, "completion_tokens": 2**31}))


@pytest.fixture
def slow() -> Iterator[PacedUpstream]:
    """A long stream, a token every 20 ms: still going when the gateway is killed."""
    yield from serve(PacedUpstream(tokens=5000, pace_s=0.02))


def customer(admin: HashgridClient, **endpoints: PacedUpstream) -> str:
    """A key of a new customer, with each upstream deployed as an endpoint under its name."""
    admin.create_site(SiteCreate(name="home", region="us-south", country="US", power_mw=1.0))
    admin.create_organization(OrganizationCreate(name="acme", kind="customer"))
    for name, upstream in endpoints.items():
        admin.deploy(DeploymentCreate(name=name, endpoint=upstream.server.url))
    return admin.create_key(KeyCreate(customer="acme")).key


def usage_of(admin: HashgridClient, client_request_id: str) -> list[UsageOut]:
    return [u for u in admin.usage(limit=1000) if u.client_request_id == client_request_id]


def test_hostile_requests_and_a_lying_node_never_stop_usage_shipping(
    server: LiveServer, tmp_path: Path, honest: PacedUpstream, liar: PacedUpstream
) -> None:
    """A 300-character and a NUL model name, and an engine's negative and 2^31 counts, each
    leave a record the server stores (none set aside), and the good requests after them are
    all stored."""
    admin = server.client()
    key = customer(admin, tiny=honest, liar=liar)
    gateway = LiveGateway(
        server.url,
        admin.create_token(TokenCreate(name="gw", role="gateway")).token,
        tmp_path / "gw",
    )
    with gateway:
        for model in ("tiny", "liar"):
            wait_until(partial(gateway.ready_replicas, model), 30, f"{model} routable")
        with httpx.Client(base_url=gateway.url, timeout=30) as http:

            def chat(rid: str, model: str, stream: bool = False) -> httpx.Response:
                body = {"model": model, "messages": MESSAGES, "stream": stream}
                headers = {"authorization": f"Bearer {key}", "x-request-id": rid}
                return http.post("/v1/chat/completions", json=body, headers=headers)

            assert chat("bad-long", "m" * 300).status_code in (400, 404)
            assert chat("bad-nul", "ti\x00ny").status_code in (400, 404)
            assert chat("lied", "liar").status_code == 200
            assert chat("lied-streamed", "liar", stream=True).status_code == 200
            good = [f"good-{i}" for i in range(4)]
            for i, rid in enumerate(good):
                assert chat(rid, "tiny", stream=i % 2 == 1).status_code == 200

        def stored() -> dict[str | None, UsageOut] | None:
            records = {u.client_request_id: u for u in admin.usage(limit=1000)}
            return records if set(good) <= set(records) else None

        records = wait_until(stored, 30, "the good requests' usage")
    for rid in good:
        assert (records[rid].prompt_tokens, records[rid].completion_tokens) == (7, 3)
        assert not records[rid].usage_clamped
    for rid in ("bad-long", "bad-nul"):
        assert records[rid].status_code in (400, 404)
        assert (records[rid].prompt_tokens, records[rid].completion_tokens) == (0, 0)
    for rid in ("lied", "lied-streamed"):
        lied = records[rid]
        assert (lied.prompt_tokens, lied.completion_tokens) == (0, 0)
        assert lied.usage_clamped
        assert lied.node_id == "external"
        assert lied.cost_usd >= 0
    with server.http() as http:
        assert http.get("/api/v1/usage/rejected").json() == []
    admin.close()


class StreamReader:
    """A client reading one stream in a thread, counting the tokens (content chunks) it got."""

    def __init__(self, url: str, key: str, request_id: str) -> None:
        self.received = 0
        body = {"model": "slow", "messages": MESSAGES, "stream": True, "max_tokens": 5000}
        headers = {"authorization": f"Bearer {key}", "x-request-id": request_id}
        self._args = (f"{url}/v1/chat/completions", body, headers)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        url, body, headers = self._args
        try:
            with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as r:
                for line in r.iter_lines():
                    if line.startswith("data: {"):
                        chunk: dict[str, Any] = orjson.loads(line[6:])
                        choices = chunk.get("choices") or [{}]
                        self.received += bool(choices[0].get("delta", {}).get("content"))
        except httpx.HTTPError:
            pass  # the gateway was killed

    def join(self) -> int:
        self._thread.join(30)
        assert not self._thread.is_alive()
        return self.received


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_stream_cut_by_a_killed_gateway_is_billed_once_for_what_reached_the_client(
    server: LiveServer, tmp_path: Path, slow: PacedUpstream
) -> None:
    admin = server.client()
    key = customer(admin, slow=slow)
    token = admin.create_token(TokenCreate(name="gw", role="gateway")).token
    port = free_port()
    ticks = {"usage_fsync_s": "0.2", "usage_flush_s": "0.2"}
    gateway = GatewayProcess(server.url, token, tmp_path / "gw", port, ticks)
    restarted: GatewayProcess | None = None
    journal = tmp_path / "gw" / "usage-spool" / "streams"
    try:
        wait_until(partial(gateway.ready_replicas, "slow"), 60, "a routable endpoint")
        reader = StreamReader(gateway.url, key, "cut")

        def journaled_tokens() -> int:
            try:
                (line,) = journal.read_bytes().splitlines()
            except (FileNotFoundError, ValueError):
                return 0
            return int(orjson.loads(line)["completion_tokens"])

        wait_until(lambda: journaled_tokens() >= 10, 30, "the stream's progress journaled")
        gateway.proc.send_signal(signal.SIGKILL)
        gateway.proc.wait(10)
        received = reader.join()
        assert journal.exists(), "the killed gateway left its journal"

        restarted = GatewayProcess(server.url, token, tmp_path / "gw", port, ticks)
        (cut,) = wait_until(lambda: usage_of(admin, "cut"), 30, "the cut stream's usage")
        assert cut.status_code == 499
        assert 10 <= cut.completion_tokens <= received
        assert cut.model == "slow"
        assert not journal.exists()
        # Shipped in spool order, a record after it shows nothing more of it was left to come.
        wait_until(partial(restarted.ready_replicas, "slow"), 60, "the restarted gateway")
        answer = httpx.post(
            f"{restarted.url}/v1/chat/completions",
            json={"model": "slow", "messages": MESSAGES, "max_tokens": 1},
            headers={"authorization": f"Bearer {key}", "x-request-id": "after"},
            timeout=60,
        )
        assert answer.status_code == 200
        wait_until(lambda: usage_of(admin, "after"), 30, "the next request's usage")
        assert len(usage_of(admin, "cut")) == 1
    finally:
        for proc in (gateway, restarted):
            if proc is not None:
                proc.stop()
        admin.close()
