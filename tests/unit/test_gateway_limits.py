"""The gateway's limiter on an injected clock: which buckets a key's and its customer's limits
make, the up-front token estimate and its correction, OpenAI's headers and 429s, budgets with
the worst-case cost each request reserves, and the spend ledger that counts this gateway's
spend exactly once."""

import itertools
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from hashgrid.billing.periods import Period
from hashgrid.contracts.gateway import (
    CustomerEntry,
    GatewayView,
    KeyEntry,
    Limits,
    RoutedModel,
    SpendReport,
)
from hashgrid.gateway.errors import QuotaExceeded, RateLimited
from hashgrid.gateway.estimates import (
    TemplateOverheads,
    estimate_tokens,
    measure,
    token_cost,
    worst_cost,
    worst_tokens,
)
from hashgrid.gateway.limits import InProcess, Limiter, duration
from hashgrid.gateway.spend import SpendLedger
from hashgrid.gateway.view import View
from hashgrid.ratelimit import LocalBuckets

JAN_2027_MS = datetime(2027, 1, 15, tzinfo=UTC).timestamp() * 1000
MODEL = RoutedModel(
    name="tiny",
    deployment="d1",
    replicas=[],
    price_prompt=1_000_000_000,  # $0.001 a token, so small requests make round sums
    price_cached=100_000_000,
    price_completion=2_000_000_000,
)
SMALL = MODEL.model_copy(update={"name": "small", "context_length": 200})
FREE = MODEL.model_copy(update={"price_prompt": 0, "price_cached": 0, "price_completion": 0})


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


_ids = itertools.count()


def rid() -> str:
    """A new request id: each admitted request's reservation is held by its own."""
    return f"req_{next(_ids)}"


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
    assert await limiter.admit(k, view_of(k), MODEL, chat(), rid()) is None


async def test_requests_per_minute_give_headers_then_a_429_with_retry_after(
    limiter: Limiter, clock: Clock
) -> None:
    k = key(rpm=2)
    view = view_of(k)
    first = await limiter.admit(k, view, MODEL, chat(), rid())
    assert first is not None
    assert first.headers == {
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "30s",
    }
    await limiter.admit(k, view, MODEL, chat(), rid())
    with pytest.raises(RateLimited) as refused:
        await limiter.admit(k, view, MODEL, chat(), rid())
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
    assert await limiter.admit(k, view, MODEL, chat(), rid()) is not None


async def test_the_customer_limit_holds_over_all_its_keys_and_headers_show_the_tighter(
    limiter: Limiter,
) -> None:
    a, b = key("ka", rpm=100), key("kb", rpm=100)
    view = view_of(a, b, customers=(CustomerEntry(customer_id="c1", limits=Limits(rpm=3)),))
    ticket = await limiter.admit(a, view, MODEL, chat(), rid())
    assert ticket is not None
    assert ticket.headers["x-ratelimit-limit-requests"] == "3"
    assert ticket.headers["x-ratelimit-remaining-requests"] == "2"
    await limiter.admit(b, view, MODEL, chat(), rid())
    await limiter.admit(b, view, MODEL, chat(), rid())
    with pytest.raises(RateLimited) as refused:
        await limiter.admit(a, view, MODEL, chat(), rid())
    assert "customer c1" in refused.value.message


async def test_tokens_are_charged_up_front_and_corrected_to_the_metered_usage(
    limiter: Limiter,
) -> None:
    k = key(tpm=1000)
    view = view_of(k)
    ticket = await limiter.admit(k, view, MODEL, chat("x" * 40, max_tokens=500), rid())
    assert ticket is not None
    assert ticket.headers["x-ratelimit-remaining-tokens"] == str(1000 - (10 + 4 + 500))
    limiter.settle(ticket, prompt=30, completion=20, status=200)
    after = await limiter.admit(k, view, MODEL, chat("x" * 40, max_tokens=100), rid())
    assert after is not None
    assert after.headers["x-ratelimit-remaining-tokens"] == str(1000 - 50 - 114)
    limiter.settle(after, prompt=0, completion=0, status=503)  # failed: charge given back
    again = await limiter.admit(k, view, MODEL, chat("x" * 40, max_tokens=100), rid())
    assert again is not None
    assert again.headers["x-ratelimit-remaining-tokens"] == str(1000 - 50 - 114)
    with pytest.raises(RateLimited) as refused:
        await limiter.admit(k, view, MODEL, chat(max_tokens=900), rid())
    # 50 + 114 charged, 905 asked: 69 tokens over, which drain in 69 x 60 ms = 4.14 s.
    assert (refused.value.type, refused.value.headers["retry-after"]) == ("tokens", "5")
    assert refused.value.headers["retry-after-ms"] == "4140"


async def test_a_request_larger_than_a_minute_of_tokens_is_told_not_to_retry(
    limiter: Limiter,
) -> None:
    k = key(tpm=100)
    with pytest.raises(RateLimited) as refused:
        await limiter.admit(k, view_of(k), MODEL, chat(max_tokens=200), rid())
    assert refused.value.headers["x-should-retry"] == "false"
    assert "retry-after" not in refused.value.headers
    assert "Request too large" in refused.value.message


async def test_a_request_is_admitted_only_if_its_worst_case_fits_the_budget(
    limiter: Limiter, ledger: SpendLedger
) -> None:
    """$1 budget; each request may cost up to 6 prompt tokens ($0.006) and 100 completion
    tokens ($0.20): four are held ($0.824), a fifth does not fit until one is settled at its
    actual cost ($0.026), which releases its hold."""
    k = key(monthly_budget_micros=1_000_000)
    view = view_of(k)
    tickets = [await limiter.admit(k, view, MODEL, chat(max_tokens=100), rid()) for _ in range(4)]
    assert tickets[0] is not None
    assert tickets[0].headers == {}, "a budget alone sends no rate limit headers"
    assert [b.cost for b in tickets[0].budgets] == [206_000]
    with pytest.raises(QuotaExceeded) as refused:
        await limiter.admit(k, view, MODEL, chat(max_tokens=100), rid())
    error = refused.value
    assert (error.status, error.type, error.code) == (
        429,
        "insufficient_quota",
        "insufficient_quota",
    )
    assert error.headers["x-should-retry"] == "false"
    assert "the monthly budget of key k1 is $1.00" in error.message
    assert "$0.00 is spent this month and $0.824 reserved by requests in flight" in error.message
    assert "may cost up to $0.206" in error.message
    limiter.settle(tickets[0], prompt=6, completion=10, status=200)
    assert ledger.key("k1", view.spend) == 26_000
    assert await limiter.admit(k, view, MODEL, chat(max_tokens=100), rid()) is not None
    with pytest.raises(QuotaExceeded):
        await limiter.admit(k, view, MODEL, chat(max_tokens=100), rid())


async def test_a_failed_request_releases_its_reservation_and_spends_nothing(
    limiter: Limiter, ledger: SpendLedger
) -> None:
    k = key(monthly_budget_micros=300_000)
    view = view_of(k)
    ticket = await limiter.admit(k, view, MODEL, chat(max_tokens=100), rid())
    assert ticket is not None
    with pytest.raises(QuotaExceeded):
        await limiter.admit(k, view, MODEL, chat(max_tokens=100), rid())
    limiter.settle(ticket, prompt=0, completion=0, status=503)
    assert ledger.key("k1", view.spend) == 0
    assert await limiter.admit(k, view, MODEL, chat(max_tokens=100), rid()) is not None


async def test_cached_prompt_tokens_are_spent_at_the_cached_price(
    limiter: Limiter, ledger: SpendLedger
) -> None:
    k = key(monthly_budget_micros=1_000_000)
    view = view_of(k)
    ticket = await limiter.admit(k, view, MODEL, chat(max_tokens=10), rid())
    assert ticket is not None
    limiter.settle(ticket, prompt=10, completion=1, status=200, cached=8)
    assert ledger.key("k1", view.spend) == 2 * 1000 + 8 * 100 + 1 * 2000


async def test_a_spent_budget_refuses_at_once_and_a_budget_of_zero_refuses_all(
    limiter: Limiter,
) -> None:
    zero = key("k0", monthly_budget_micros=0)
    with pytest.raises(QuotaExceeded):
        await limiter.admit(zero, view_of(zero), FREE, chat(max_tokens=1), rid())
    k = key(monthly_budget_micros=1_000_000)
    spent = SpendReport(seq=1, period="2027-01", keys={"k1": 1_000_000})
    with pytest.raises(QuotaExceeded):
        await limiter.admit(k, view_of(k, spend=spent), FREE, chat(max_tokens=1), rid())


async def test_without_max_tokens_the_whole_context_is_reserved(limiter: Limiter) -> None:
    """A model of 200 tokens of context: the worst case is 200 completion tokens (the dearer),
    whatever the prompt; where the view knows no context, `default_completion_tokens`."""
    k = key(monthly_budget_micros=10_000_000)
    view = view_of(k)
    ticket = await limiter.admit(k, view, SMALL, chat("x" * 50), rid())
    assert ticket is not None
    assert [b.cost for b in ticket.budgets] == [200 * 2000]
    ticket = await limiter.admit(k, view, MODEL, chat("x" * 50), rid())
    assert ticket is not None
    assert [b.cost for b in ticket.budgets] == [54 * 1000 + 256 * 2000]


async def test_the_customer_budget_counts_the_spend_of_every_key_in_the_view(
    limiter: Limiter,
) -> None:
    k = key()
    customers = (CustomerEntry(customer_id="c1", limits=Limits(monthly_budget_micros=2_000_000)),)
    nothing = SpendReport(seq=4, period="2027-01")
    body = chat(max_tokens=10)
    assert await limiter.admit(
        k, view_of(k, customers=customers, spend=nothing), MODEL, body, rid()
    )
    spent = SpendReport(seq=5, period="2027-01", customers={"c1": 1_990_000})
    with pytest.raises(QuotaExceeded) as refused:
        await limiter.admit(k, view_of(k, customers=customers, spend=spent), MODEL, body, rid())
    assert "customer c1" in refused.value.message
    assert "$1.99 is spent" in refused.value.message
    last_month = spent.model_copy(update={"period": "2026-12"})
    view = view_of(k, customers=customers, spend=last_month)
    assert await limiter.admit(k, view, MODEL, body, rid())


async def test_a_key_without_a_budget_reserves_nothing(limiter: Limiter) -> None:
    k = key(rpm=10)
    ticket = await limiter.admit(k, view_of(k), MODEL, chat(), rid())
    assert ticket is not None
    assert ticket.budgets == ()


def test_own_spend_counts_until_the_server_figures_hold_it_and_never_twice(
    ledger: SpendLedger,
) -> None:
    ledger.add("r1", "k1", "c1", 600_000)
    ledger.add("r2", "k1", None, 100_000)
    empty = SpendReport(seq=1, period="2027-01")
    assert ledger.key("k1", empty) == 700_000
    assert ledger.customer("c1", empty) == 600_000
    ledger.shipped(["r1", "r2", "not-mine"], seq=10)
    before = SpendReport(seq=9, period="2027-01", keys={"k1": 5_000_000})
    assert ledger.key("k1", before) == 5_700_000, "the batch is not in seq 9"
    holding = SpendReport(
        seq=10, period="2027-01", keys={"k1": 5_700_000}, customers={"c1": 600_000}
    )
    assert ledger.key("k1", holding) == 5_700_000
    assert ledger.customer("c1", holding) == 600_000


def test_a_new_month_starts_every_budget_from_nothing(ledger: SpendLedger, clock: Clock) -> None:
    ledger.add("r1", "k1", None, 3_000_000)
    january = SpendReport(seq=1, period="2027-01", keys={"k1": 4_000_000})
    assert ledger.key("k1", january) == 7_000_000
    clock.now = datetime(2027, 2, 1, tzinfo=UTC).timestamp() * 1000
    assert ledger.key("k1", january) == 0
    assert ledger.period == Period(2027, 2)


# ------------------------------------------------------------------ the worst-case estimate


def worst(body: dict[str, Any], model: RoutedModel = MODEL, default: int = 256) -> tuple[int, int]:
    return worst_tokens(measure(body), model, default)


def test_the_prompt_is_bounded_by_its_utf8_bytes_and_4_tokens_a_message() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "héllo"},  # 6 bytes
            {"role": "user", "content": [{"type": "text", "text": "abc"}]},
        ],
        "max_tokens": 5,
    }
    assert worst(body) == (6 + 3 + 2 * 4, 5)
    assert estimate_tokens(body, 256)[0] == 2 + 2 * 4, "rate limits estimate 4 characters a token"
    # A prompt without messages gets one message's worth of template (a BOS token, ...).
    assert worst({"prompt": [1, 2, 3], "max_tokens": 2}) == (3 + 4, 2), "token ids count one each"
    assert worst({"prompt": "abcd", "max_tokens": 2, "n": 3}) == (4 + 4, 6)
    assert worst({"prompt": ["ab", [1, 2, 3]], "max_tokens": 2}) == (5 + 8, 4), "a batch of two"


def test_what_the_template_also_renders_counts_in_the_prompt() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    call = {"role": "assistant", "content": "", "tool_calls": [{"id": "c1"}]}
    body = {"messages": [call], "tools": tools, "max_tokens": 1}
    extra = len(orjson.dumps(tools)) + len(orjson.dumps({"tool_calls": [{"id": "c1"}]}))
    assert worst(body) == (extra + 4, 1)


def test_the_context_length_caps_the_prompt_and_the_completion() -> None:
    """SMALL has 200 tokens of context: no prompt is longer, and prompt and completion of each
    choice fit in it, with the dearer tokens (here the completion's) counted first."""
    assert worst({"prompt": "x" * 500, "max_tokens": 10}, SMALL) == (190, 10)
    assert worst({"prompt": "x" * 50}, SMALL) == (0, 200)
    assert worst({"prompt": "x" * 50, "max_tokens": 120, "n": 2}, SMALL) == (54, 240)
    cheap_completion = SMALL.model_copy(update={"price_prompt": 3_000_000_000})
    assert worst({"prompt": "x" * 500}, cheap_completion) == (200, 0)
    image = {"type": "image_url", "image_url": {"url": "http://x/y.png"}}
    body = {"messages": [{"role": "user", "content": [image]}], "max_tokens": 10}
    assert worst(body, SMALL) == (190, 10), "an image may take the whole context"


def test_without_max_tokens_the_completion_is_the_context_or_the_default() -> None:
    assert worst({"prompt": "ab"}, MODEL, default=99) == (6, 99)
    assert worst({"prompt": "ab"}, SMALL) == (0, 200)


def test_embeddings_have_no_completion() -> None:
    embed = SMALL.model_copy(update={"task": "embed"})
    assert worst({"input": ["abc", "de"]}, embed) == (5 + 8, 0)


def test_the_worst_cost_is_rounded_up_to_a_micro_dollar() -> None:
    tiny = MODEL.model_copy(update={"price_prompt": 1, "price_completion": 1})
    assert worst_cost(measure({"prompt": "a", "max_tokens": 1}), tiny, 256) == 1
    assert worst_cost(measure({"prompt": "ab", "max_tokens": 5}), MODEL, 256) == 16_000


def test_a_template_spending_more_than_4_tokens_a_message_widens_the_bound_once_metered() -> None:
    """A ChatML template spells its markers out (tens of tokens): once one answer is metered
    above the bound, the model's requests are bounded with that template's tokens a message."""
    overheads = TemplateOverheads()
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    size = measure(body)
    assert worst_tokens(size, MODEL, 256, overheads.per_message("tiny")) == (2 + 4, 1)
    overheads.learn("tiny", size, 33)  # the engine counted 31 tokens beyond the 2 bytes
    per_message = overheads.per_message("tiny")
    assert per_message == 31
    assert worst_tokens(size, MODEL, 256, per_message)[0] >= 33
    two = measure({"messages": [{"role": "user", "content": "hi"}] * 2, "max_tokens": 1})
    assert worst_tokens(two, MODEL, 256, per_message)[0] == 4 + 2 * 31
    overheads.learn("tiny", size, 10)  # a smaller count never narrows it
    assert overheads.per_message("tiny") == 31
    assert overheads.per_message("other") == 4
