"""Keys and limits end to end: two gateways sharing one real Redis in front of one control
plane, a real agent and a real llama.cpp engine, called with the official `openai` client."""

import asyncio
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis.asyncio as redis

from hashgrid.client import HashgridClient
from hashgrid.contracts.api.access import TokenCreate
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.common import Limits
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.prices import PriceCreate
from hashgrid.contracts.api.sites import SiteCreate

from support.live import AgentProcess, LiveGateway, LiveServer, server_settings, wait_until

REDIS_URL = "redis://127.0.0.1:6379/0"
# USD per million completion tokens: $0.001 a token. Prompt tokens are free here: the tiny
# model's chat template spells its markers out in some 40 tokens, more than the 4 a message
# the gateway bounds a prompt's template with, so a priced prompt could cost more than its
# worst case, which budgets take to be the most a request costs.
PRICE = Decimal(1000)
MESSAGES = [{"role": "user", "content": "hello"}]


@dataclass
class Stack:
    server: LiveServer
    gateways: tuple[LiveGateway, LiveGateway]
    admin: HashgridClient

    def key(self, customer: str = "acme", **limits: Any) -> str:
        """A new key of `customer` with `limits`, once both gateways accept it."""
        limited = Limits(**limits)
        secret = self.admin.create_key(KeyCreate(customer=customer, limits=limited)).key
        for g in self.gateways:
            wait_until(lambda g=g: _models(g, secret) == 200, 10, "the gateways to know the key")
        return secret


def _models(gateway: LiveGateway, key: str) -> int:
    """The status of `GET /v1/models`: it authenticates, and takes nothing from any limit."""
    headers = {"authorization": f"Bearer {key}"}
    return httpx.get(f"{gateway.url}/v1/models", headers=headers, timeout=10).status_code


def _openai(gateway: LiveGateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=60)


def _drop_redis_keys(prefix: str) -> None:
    async def drop() -> None:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()

    asyncio.run(drop())


@pytest.fixture(scope="module")
def stack(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One control plane, agent and engine; two gateways on one Redis (a prefix of their own)."""
    home = tmp_path_factory.mktemp("limits-stack")
    server = LiveServer(server_settings(home / "server", f"sqlite+aiosqlite:///{home / 'db'}"))
    server.start()
    admin = server.client()
    admin.create_site(SiteCreate(name="local", region="us-south", country="US", power_mw=1.0))
    admin.create_organization(OrganizationCreate(name="acme", kind="customer"))
    size = tiny_model.stat().st_size
    admin.add_model(ModelCreate(name="tiny", source=str(tiny_model), size_bytes=size))
    admin.deploy(DeploymentCreate(model="tiny"))
    admin.add_prices(PriceCreate(model="tiny", prompt=Decimal(0), completion=PRICE))
    agent = AgentProcess(server.url, home / "agent", admin.create_join_token("local").token, "n1")
    prefix = f"hg-test-{uuid.uuid4().hex[:12]}"
    token = admin.create_token(TokenCreate(name="gw", role="gateway")).token
    # A long Redis timeout: on a loaded test machine a slow answer must not fail open.
    shared = {"redis_url": REDIS_URL, "redis_prefix": prefix, "redis_timeout_s": 10.0}
    gateways = tuple(LiveGateway(server.url, token, home / f"gw-{i}", **shared) for i in range(2))
    for g in gateways:
        g.start()
    live = Stack(server, (gateways[0], gateways[1]), admin)
    try:
        for g in gateways:
            wait_until(lambda g=g: g.ready_replicas("tiny") == 1, 60, "a routable replica")
        yield live
    finally:
        for g in gateways:
            g.stop()
        agent.terminate()
        admin.close()
        live.server.stop()
        _drop_redis_keys(prefix)


def test_requests_per_minute_hold_exactly_across_two_gateways(stack: Stack) -> None:
    """A key with 3 rpm sends 8 requests at once through both gateways: exactly 3 pass, each
    with the remaining count it left, and 5 get OpenAI's 429 with retry-after."""
    key = stack.key(rpm=3)
    clients = [_openai(g, key) for g in stack.gateways]

    def send(i: int) -> Any:
        try:
            return clients[i % 2].chat.completions.with_raw_response.create(
                model="tiny", messages=MESSAGES, max_tokens=2
            )
        except openai.RateLimitError as e:
            return e

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, range(8)))
    passed = [r for r in results if not isinstance(r, openai.RateLimitError)]
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert len(passed) == 3
    assert sorted(r.headers["x-ratelimit-remaining-requests"] for r in passed) == ["0", "1", "2"]
    assert all(r.headers["x-ratelimit-limit-requests"] == "3" for r in passed)
    assert all(r.parse().usage.completion_tokens > 0 for r in passed)
    assert len(refused) == 5
    for e in refused:
        assert (e.status_code, e.code, e.type) == (429, "rate_limit_exceeded", "requests")
        assert 1 <= int(e.response.headers["retry-after"]) <= 20
        assert e.response.headers["x-ratelimit-remaining-requests"] == "0"
        assert e.response.headers["x-ratelimit-reset-requests"].endswith("s")
        assert "x-should-retry" not in e.response.headers


def test_streams_are_limited_before_they_start(stack: Stack) -> None:
    key = stack.key(rpm=1)
    body = {"model": "tiny", "messages": MESSAGES, "max_tokens": 2, "stream": True}
    url = f"{stack.gateways[1].url}/v1/chat/completions"
    headers = {"authorization": f"Bearer {key}"}
    with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as first:
        assert first.status_code == 200
        assert first.headers["content-type"].startswith("text/event-stream")
        assert first.headers["x-ratelimit-remaining-requests"] == "0"
        assert b"[DONE]" in first.read()
    second = httpx.post(url, json=body, headers=headers, timeout=30)
    assert second.status_code == 429
    assert second.headers["content-type"] == "application/json"
    assert second.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(second.headers["retry-after"]) >= 1


def test_tokens_are_charged_up_front_and_corrected_to_the_metered_usage(stack: Stack) -> None:
    """The charge up front is the prompt's length / 4 + 4 a message + max_tokens; once metered
    it is the engine's count (here much more: each `q` is a token of its own)."""
    limit = 1200
    key = stack.key(tpm=limit)
    client = _openai(stack.gateways[0], key)
    messages = [{"role": "user", "content": "q" * 400}]
    estimate = 400 // 4 + 4 + 4
    started = time.monotonic()
    first = client.chat.completions.with_raw_response.create(
        model="tiny", messages=messages, max_tokens=4
    )
    assert first.headers["x-ratelimit-limit-tokens"] == str(limit)
    assert first.headers["x-ratelimit-remaining-tokens"] == str(limit - estimate)
    usage = first.parse().usage
    assert usage is not None
    used = usage.total_tokens
    assert used > estimate + 200, "the tiny model spends a token on each `q`"
    second = client.chat.completions.with_raw_response.create(
        model="tiny", messages=messages, max_tokens=4
    )
    left = int(second.headers["x-ratelimit-remaining-tokens"])
    # The bucket refills limit / 60 tokens a second: `left` is the exact figure plus what came
    # back since the first request (bounded by the time measured here, however slow the
    # machine), and far below what an uncorrected charge would leave.
    refilled = limit / 60 * (time.monotonic() - started)
    assert limit - used - estimate <= left <= limit - used - estimate + refilled + 1
    with pytest.raises(openai.RateLimitError) as over:
        client.chat.completions.create(model="tiny", messages=messages, max_tokens=limit - 300)
    assert (over.value.code, over.value.type) == ("rate_limit_exceeded", "tokens")
    assert int(over.value.response.headers["retry-after"]) >= 1
    with pytest.raises(openai.RateLimitError) as too_large:
        client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=limit + 1)
    assert too_large.value.response.headers["x-should-retry"] == "false"
    assert "Request too large" in too_large.value.message


def test_a_request_that_would_cross_its_budget_is_refused_up_front_at_both_gateways(
    stack: Stack,
) -> None:
    """A $0.01 key budget at $0.001 a completion token: asking for 11 tokens may cost more than
    the budget and is refused before any work (429 insufficient_quota, x-should-retry: false);
    asking for 4 is served, and what it cost counts at the other gateway at once (through
    Redis): there, the request that no longer fits is refused, the one that fits exactly is
    served; the control plane stores the costs."""
    key = stack.key(monthly_budget_usd=Decimal("0.01"))
    with pytest.raises(openai.RateLimitError) as refused:
        _openai(stack.gateways[0], key).chat.completions.create(
            model="tiny", messages=MESSAGES, max_tokens=11
        )
    error = refused.value
    assert (error.status_code, error.code, error.type) == (
        429,
        "insufficient_quota",
        "insufficient_quota",
    )
    assert error.response.headers["x-should-retry"] == "false"
    assert "is $0.01; $0.00 is spent" in error.message
    assert "may cost up to $0.011" in error.message
    first = _openai(stack.gateways[0], key).chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=4, extra_headers={"x-request-id": key[-12:]}
    )
    assert first.usage is not None
    used = first.usage.completion_tokens
    left = 10 - used  # completion tokens the budget still pays for

    def ask_the_other(max_tokens: int) -> httpx.Response:
        return httpx.post(
            f"{stack.gateways[1].url}/v1/chat/completions",
            json={"model": "tiny", "messages": MESSAGES, "max_tokens": max_tokens},
            headers={"authorization": f"Bearer {key}"},
            timeout=30,
        )

    def refused_at_the_other() -> bool:
        r = ask_the_other(left + 1)
        return r.status_code == 429 and r.json()["error"]["code"] == "insufficient_quota"

    wait_until(refused_at_the_other, 10, "the other gateway to count the first request's cost")
    assert ask_the_other(left).status_code == 200, "what is left is spendable to the micro"

    def stored() -> Any:
        found = [u for u in stack.admin.usage(limit=1000) if u.client_request_id == key[-12:]]
        return found[0] if found else None

    record = wait_until(stored, 15, "the usage record at the control plane")
    assert record.cost_usd == used * PRICE / 1_000_000
    (listed,) = [k for k in stack.admin.list_keys() if k.prefix == key[:10]]
    assert record.cost_usd <= listed.month_spend_usd <= Decimal("0.01")


def test_a_1_dollar_budget_hit_by_32_concurrent_requests_across_two_gateways(
    stack: Stack,
) -> None:
    """A customer with a $1 budget sends 32 requests at once, half through each gateway, each
    of which may cost $0.20 (200 completion tokens at $0.001): only as many as fit beside the
    reservations in flight are served, the others are refused with insufficient_quota, and the
    spend the control plane stores, once every record has arrived, never exceeds $1."""
    stack.admin.create_organization(OrganizationCreate(name="thrift", kind="customer"))
    key = stack.key(customer="thrift")
    stack.admin.set_organization_limits("thrift", Limits(monthly_budget_usd=Decimal(1)))
    with stack.server.http() as http:
        revision = http.get("/api/v1/gateway/view").json()["revision"]
    for g in stack.gateways:
        wait_until(lambda g=g: g.health()["revision"] >= revision, 10, "the view with the budget")
    clients = [_openai(g, key) for g in stack.gateways]
    tag = uuid.uuid4().hex[:8]

    def send(i: int) -> Any:
        try:
            return clients[i % 2].chat.completions.create(
                model="tiny",
                messages=MESSAGES,
                max_tokens=200,
                extra_headers={"x-request-id": f"{tag}-{i}"},
            )
        except openai.RateLimitError as e:
            return e

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(send, range(32)))
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    served = [r for r in results if not isinstance(r, openai.RateLimitError)]
    assert refused, "32 requests of $0.20 cannot all fit in $1"
    assert served
    assert {(e.code, e.response.headers["x-should-retry"]) for e in refused} == {
        ("insufficient_quota", "false")
    }
    assert sum(r.usage.completion_tokens for r in served) > 0

    def records() -> list[Any] | None:
        mine = [u for u in stack.admin.usage(limit=1000) if (u.client_request_id or "")[:8] == tag]
        return mine if len(mine) == 32 else None

    spent = sum(u.cost_usd for u in wait_until(records, 30, "every request's usage record"))
    assert 0 < spent <= Decimal(1)
    assert stack.admin.get_organization("thrift").month_spend_usd <= Decimal(1)


def test_a_revoked_key_is_refused_within_five_seconds(stack: Stack) -> None:
    key = stack.key()
    (listed,) = [k for k in stack.admin.list_keys() if k.prefix == key[:10]]
    stack.admin.revoke_key(listed.id)
    for g in stack.gateways:
        wait_until(lambda g=g: _models(g, key) == 401, 5, "the revocation to reach the gateway")
    with pytest.raises(openai.AuthenticationError):
        _openai(stack.gateways[0], key).chat.completions.create(
            model="tiny", messages=MESSAGES, max_tokens=2
        )


def test_gateways_serve_and_limit_from_their_cache_while_the_server_is_away(
    stack: Stack,
) -> None:
    """With the control plane stopped a key is still authenticated, served and limited from the
    gateway's last view; when it returns, the usage spooled meanwhile arrives, and the gateways
    catch up with changes (a revocation)."""
    key = stack.key(rpm=2)
    client = _openai(stack.gateways[0], key)
    stack.server.stop()
    ids = [f"away-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for request_id in ids:
        headers = {"x-request-id": request_id}
        client.chat.completions.create(
            model="tiny", messages=MESSAGES, max_tokens=2, extra_headers=headers
        )
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=2)

    stack.server = LiveServer(stack.server.settings, port=stack.server.port)
    stack.server.start()
    wait_until(
        lambda: set(ids) <= {u.client_request_id for u in stack.admin.usage(limit=1000)},
        30,
        "the usage spooled while the server was away",
    )
    (listed,) = [k for k in stack.admin.list_keys() if k.prefix == key[:10]]
    stack.admin.revoke_key(listed.id)
    for g in stack.gateways:
        wait_until(lambda g=g: _models(g, key) == 401, 30, "the gateways to catch up")
