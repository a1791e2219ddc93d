"""The gateway's limiter on an injected clock: which buckets a key's and its customer's limits
make, the up-front token estimate and its correction, OpenAI's headers and 429s, budgets, and
the spend ledger that counts this gateway's spend exactly once."""

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from hashgrid.contracts.gateway import (
    CustomerEntry,
    GatewayView,
    KeyEntry,
    Limits,
    RoutedModel,
    SpendReport,
)
from hashgrid.gateway.errors import QuotaExceeded, RateLimited
from hashgrid.gateway.limits import InProcess, Limiter, duration, estimate_tokens, token_cost
from hashgrid.gateway.spend import SpendLedger, period_of_ms
from hashgrid.gateway.view import View
from hashgrid.ratelimit import LocalBuckets

JAN_2027_MS = datetime(2027, 1, 15, tzinfo=UTC).timestamp() * 1000
MODEL = RoutedModel(
    name="tiny",
    deployment="d1",
    replicas=[],
    price_prompt=1_000_000_000,  # $0.001 a token, so small requests make round sums
    price_completion=2_000_000_000,
)


class Clock:
    def __init__(self, now: float = JAN_2027_MS) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def view_of(
    *keys: KeyEntry, customers: tuple[CustomerEntry, ...] = (), spend: SpendReport | None = None
) -> View:
    return View.of(
        GatewayView(
            revision=1,
            models=[MODEL],
            keys=list(keys),
            customers=list(customers),
            spend=spend or SpendReport(),
        )
    )


def key(key_id: str = "k1", customer_id: str = "c1", **limits: Any) -> KeyEntry:
    return KeyEntry(
        key_id=key_id, key_hash=f"h-{key_id}", customer_id=customer_id, limits=Limits(**limits)
    )


def chat(content: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": [{"role": "user", "content": content}], **extra}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(clock: Clock) -> SpendLedger:
    return SpendLedger(clock)


@pytest.fixture
def limiter(clock: Clock, ledger: SpendLedger) -> Limiter:
    return Limiter(InProcess(LocalBuckets(clock)), ledger, default_completion_tokens=256)


def test_estimates_count_prompt_characters_messages_and_the_completion_asked_for() -> None:
    parts = {"role": "user", "content": [{"type": "text", "text": "abcdefgh"}, {"type": "x"}]}
    body = {"messages": [{"role": "system", "content": "abcd"}, parts], "max_tokens": 10}
    assert estimate_tokens(body, 256) == (1 + 2 + 2 * 4, 10, True)
    assert estimate_tokens({"prompt": "abcde", "max_completion_tokens": 7, "n": 3}, 256) == (
        2,
        21,
        True,
    )
    assert estimate_tokens({"prompt": [1, 2, 3]}, 256) == (3, 256, False)
    assert estimate_tokens({"prompt": ["abcd", [1, 2]], "max_tokens": 5}, 99) == (3, 10, True)
    assert estimate_tokens({"prompt": "x", "max_tokens": True}, 50) == (1, 50, False)


def test_a_defaulted_completion_is_charged_at_most_the_limit_but_an_asked_one_in_full() -> None:
    assert token_cost(10, 256, explicit=False, limit=100) == 100
    assert token_cost(10, 256, explicit=True, limit=100) == 266
    assert token_cost(150, 256, explicit=False, limit=100) == 150, "the prompt alone is too big"


def test_durations_are_written_as_openai_writes_them() -> None:
    assert [duration(ms) for ms in (0, 19.2, 1000, 1500, 60_000, 361_250)] == [
        "0ms",
        "20ms",
        "1s",
        "1.5s",
        "1m0s",
        "6m1.25s",
    ]


async def test_a_key_without_limits_costs_no_decision_and_gets_no_headers(
    limiter: Limiter,
) -> None:
    k = key()
    assert await limiter.admit(k, view_of(k), MODEL, chat()) is None


async def test_requests_per_minute_give_headers_then_a_429_with_retry_after(
    limiter: Limiter, clock: Clock
) -> None:
    k = key(rpm=2)
    view = view_of(k)
    first = await limiter.admit(k, view, MODEL, chat())
    assert first is not None
    assert first.headers == {
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "30s",
    }
    await limiter.admit(k, view, MODEL, chat())
    with pytest.raises(RateLimited) as refused:
        await limiter.admit(k, view, MODEL, chat())
    error = refused.value
    assert (error.status, error.type, error.code) == (429, "requests", "rate_limit_exceeded")
    assert error.headers["retry-after"] == "30"
    assert error.headers["retry-after-ms"] == "30000"
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert "x-should-retry" not in error.headers
    assert "Limit 2, Used 2, Requested 1" in error.message
    body = orjson.loads(error.response("r1").body)
    assert body["error"]["code"] == "rate_limit_exceeded"
    clock.now += 30_000
    assert await limiter.admit(k, view, MODEL, chat()) is not None


async def test_the_customer_limit_holds_over_all_its_keys_and_headers_show_the_tighter(
    limiter: Limiter,
) -> None:
    a, b = key("ka", rpm=100), key("kb", rpm=100)
    view = view_of(a, b, customers=(CustomerEntry(customer_id="c1", limits=Limits(rpm=3)),))
    ticket = await limiter.admit(a, view, MODEL, chat())
    assert ticket is not None
    assert ticket.headers["x-ratelimit-limit-requests"] == "3"
    assert ticket.headers["x-ratelimit-remaining-requests"] == "2"
    await limiter.admit(b, view, MODEL, chat())
    await limiter.admit(b, view, MODEL, chat())
    with pytest.raises(RateLimited) as refused:
        await limiter.admit(a, view, MODEL, chat())
    assert "customer c1" in refused.value.message


async def test_tokens_are_charged_up_front_and_corrected_to_the_metered_usage(
    limiter: Limiter,
) -> None:
    k = key(tpm=1000)
    view = view_of(k)
    ticket = await limiter.admit(k, view, MODEL, chat("x" * 40, max_tokens=500))
    assert ticket is not None
    assert ticket.headers["x-ratelimit-remaining-tokens"] == str(1000 - (10 + 4 + 500))
    limiter.settle(ticket, "r1", prompt=30, completion=20, status=200)
    after = await limiter.admit(k, view, MODEL, chat("x" * 40, max_tokens=100))
    assert after is not None
    assert after.headers["x-ratelimit-remaining-tokens"] == str(1000 - 50 - 114)
    limiter.settle(after, "r2", prompt=0, completion=0, status=503)  # failed: charge given back
    again = await limiter.admit(k, view, MODEL, chat("x" * 40, max_tokens=100))
    assert again is not None
    assert again.headers["x-ratelimit-remaining-tokens"] == str(1000 - 50 - 114)
    with pytest.raises(RateLimited) as refused:
        await limiter.admit(k, view, MODEL, chat(max_tokens=900))
    # 50 + 114 charged, 905 asked: 69 tokens over, which drain in 69 x 60 ms = 4.14 s.
    assert (refused.value.type, refused.value.headers["retry-after"]) == ("tokens", "5")
    assert refused.value.headers["retry-after-ms"] == "4140"


async def test_a_request_larger_than_a_minute_of_tokens_is_told_not_to_retry(
    limiter: Limiter,
) -> None:
    k = key(tpm=100)
    with pytest.raises(RateLimited) as refused:
        await limiter.admit(k, view_of(k), MODEL, chat(max_tokens=200))
    assert refused.value.headers["x-should-retry"] == "false"
    assert "retry-after" not in refused.value.headers
    assert "Request too large" in refused.value.message


async def test_a_budget_is_refused_once_the_metered_spend_reaches_it(limiter: Limiter) -> None:
    k = key(monthly_budget_usd=0.05)
    view = view_of(k)
    ticket = await limiter.admit(k, view, MODEL, chat())
    assert ticket is not None
    assert ticket.headers == {}, "a budget alone sends no rate limit headers"
    limiter.settle(ticket, "r1", prompt=20, completion=10, status=200)  # $0.02 + $0.02
    assert await limiter.admit(k, view, MODEL, chat()) is not None
    limiter.settle(ticket, "r2", prompt=10, completion=0, status=200)  # $0.01 more: $0.05
    with pytest.raises(QuotaExceeded) as refused:
        await limiter.admit(k, view, MODEL, chat())
    error = refused.value
    assert (error.status, error.type) == (429, "insufficient_quota")
    assert error.code == "insufficient_quota"
    assert error.headers["x-should-retry"] == "false"
    assert "$0.05" in error.message


async def test_the_customer_budget_counts_the_spend_of_every_key_in_the_view(
    limiter: Limiter,
) -> None:
    k = key()
    customers = (CustomerEntry(customer_id="c1", limits=Limits(monthly_budget_usd=2.0)),)
    nothing = SpendReport(seq=4, period="2027-01")
    assert await limiter.admit(k, view_of(k, customers=customers, spend=nothing), MODEL, chat())
    spent = SpendReport(seq=5, period="2027-01", customers={"c1": 2.0})
    with pytest.raises(QuotaExceeded) as refused:
        await limiter.admit(k, view_of(k, customers=customers, spend=spent), MODEL, chat())
    assert "customer c1" in refused.value.message
    last_month = spent.model_copy(update={"period": "2026-12"})
    assert await limiter.admit(k, view_of(k, customers=customers, spend=last_month), MODEL, chat())


def test_own_spend_counts_until_the_server_figures_hold_it_and_never_twice(
    ledger: SpendLedger,
) -> None:
    ledger.add("r1", "k1", "c1", 0.6)
    ledger.add("r2", "k1", None, 0.1)
    empty = SpendReport(seq=1, period="2027-01")
    assert ledger.key("k1", empty) == pytest.approx(0.7)
    assert ledger.customer("c1", empty) == pytest.approx(0.6)
    ledger.shipped(["r1", "r2", "not-mine"], seq=10)
    before = SpendReport(seq=9, period="2027-01", keys={"k1": 5.0})
    assert ledger.key("k1", before) == pytest.approx(5.7), "the batch is not in seq 9"
    holding = SpendReport(seq=10, period="2027-01", keys={"k1": 5.7}, customers={"c1": 0.6})
    assert ledger.key("k1", holding) == pytest.approx(5.7)
    assert ledger.customer("c1", holding) == pytest.approx(0.6)


def test_a_new_month_starts_every_budget_from_nothing(ledger: SpendLedger, clock: Clock) -> None:
    ledger.add("r1", "k1", None, 3.0)
    january = SpendReport(seq=1, period="2027-01", keys={"k1": 4.0})
    assert ledger.key("k1", january) == pytest.approx(7.0)
    clock.now = datetime(2027, 2, 1, tzinfo=UTC).timestamp() * 1000
    assert ledger.key("k1", january) == 0.0
    assert ledger.period == "2027-02"
    assert period_of_ms(datetime(2027, 12, 31, 23, 59, tzinfo=UTC).timestamp() * 1000) == (
        "2027-12",
        datetime(2028, 1, 1, tzinfo=UTC).timestamp() * 1000,
    )
