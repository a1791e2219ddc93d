"""Per-key and per-customer rate limits and budgets, decided before a request is forwarded.

A key may have requests-per-minute and tokens-per-minute limits and a monthly budget (integer
micro-dollars); its customer may have the same, over all its keys together. Every limit is a
bucket of the pure core (`hashgrid.ratelimit`): one decision takes from all of a request's
buckets at once, or from none. The buckets live in this process (`LocalBuckets`) or, with
`HASHGRID_GATEWAY_REDIS_URL`, in Redis (`RedisBuckets`), shared by every gateway there, one
round trip per decision. A key with no limits and a customer with none cost no decision at all.

Tokens are charged before the answer exists, as an estimate (`gateway/estimates.py`); without
`max_tokens` the completion is taken as `default_completion_tokens`, but then never as more
than the limit, so the request can always pass once the bucket has room. When the answer is
metered the charge is corrected to the tokens the engine counted (a failed request gets its
charge back).

Budgets are hard: a request is admitted only if its worst-case cost (`estimates.worst_cost`:
a bound of its prompt, plus all the completion it allows, at the model's prices in the view)
fits what is left of each budget, after the month's spend (`gateway/spend.py`) and what the
requests in flight hold. Admitted, it reserves that worst case; when its answer is metered the
reservation is released and its actual cost (the engine's tokens at the same prices, rounded up
to a micro-dollar) is spent. A key or customer without a budget pays nothing of this.

Every answer to a limited key carries OpenAI's headers: `x-ratelimit-{limit,remaining,reset}-
{requests,tokens}`, for the tighter of the key's and its customer's limits. A refusal is a 429
in OpenAI's shape with `retry-after` (seconds) and `retry-after-ms`; where waiting cannot help
(a budget the request does not fit, a request larger than a whole minute's tokens) it says
`x-should-retry: false` instead, which the OpenAI SDKs obey.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hashgrid.billing.money import FREE, UnitPrices, micros_up, micros_usd
from hashgrid.billing.periods import Period
from hashgrid.contracts.gateway import KeyEntry, Limits, RoutedModel
from hashgrid.gateway.errors import QuotaExceeded, RateLimited
from hashgrid.gateway.estimates import (
    Size,
    TemplateOverheads,
    measure,
    prices_of,
    token_cost,
    tokens_of,
    worst_cost,
)
from hashgrid.gateway.spend import SpendLedger
from hashgrid.gateway.view import View
from hashgrid.ratelimit import Budget, Charge, LocalBuckets, Spend, Verdict, remaining


class Settler(Protocol):
    def settle(
        self, corrections: Sequence[tuple[Charge, int]], spends: Sequence[Spend]
    ) -> None: ...


class Store(Protocol):
    """Where buckets and budget reservations live: in this process, or in Redis."""

    async def take(
        self, charges: Sequence[Charge], budgets: Sequence[Budget], hold: str
    ) -> tuple[Verdict, Settler]: ...


class InProcess:
    """The in-process store: buckets in a dict, decided in microseconds."""

    def __init__(self, local: LocalBuckets) -> None:
        self._local = local

    async def take(
        self, charges: Sequence[Charge], budgets: Sequence[Budget], hold: str
    ) -> tuple[Verdict, Settler]:
        return self._local.take(charges, budgets, hold), self._local


@dataclass(frozen=True, slots=True)
class Policy:
    """A key's limits and its customer's, with the names of their buckets and counters."""

    key_id: str
    customer_id: str
    period: Period
    key_buckets: str  # the prefix of the key's own buckets and counter
    requests: tuple[Charge, ...]  # cost 1: the key's rpm, the customer's rpm
    tokens: tuple[tuple[str, int], ...]  # bucket and tpm limit: the key's, the customer's
    key_budget: int | None  # micro-dollars a month
    customer_budget: int | None
    key_counter: str
    customer_counter: str


@dataclass(slots=True)
class Ticket:
    """An admitted request's charges and reservations, settled when its answer is metered."""

    policy: Policy
    request_id: str  # what holds its reservations, and its spend in the ledger
    tokens: tuple[Charge, ...]
    budgets: tuple[Budget, ...]  # each holding the request's worst case
    settler: Settler
    headers: dict[str, str]
    # The model's in the view that admitted it (pico-dollars per token), where it has budgets.
    prices: UnitPrices
    model: str = ""
    size: Size | None = None  # the body as measured for its budgets: what metering teaches


class Limiter:
    def __init__(self, store: Store, ledger: SpendLedger, default_completion_tokens: int) -> None:
        self._store = store
        self._ledger = ledger
        self._default_completion = default_completion_tokens
        self._overheads = TemplateOverheads()
        self._policies: dict[str, Policy | None] = {}
        self._policies_view: View | None = None
        self._policies_period: Period | None = None

    async def admit(
        self,
        key: KeyEntry,
        view: View,
        model: RoutedModel,
        body: dict[str, Any],
        request_id: str,
    ) -> Ticket | None:
        """Charge the request to its buckets and reserve its worst case from its budgets (as
        `request_id`), or raise a 429; None for a key without limits."""
        policy = self._policy(key, view)
        if policy is None:
            return None
        budgeted = policy.key_budget is not None or policy.customer_budget is not None
        size = measure(body, bound=budgeted) if policy.tokens or budgeted else None
        tokens: tuple[Charge, ...] = ()
        if policy.tokens:
            assert size is not None
            prompt, completion, explicit = tokens_of(size, self._default_completion)
            tokens = tuple(
                Charge(bucket, limit, token_cost(prompt, completion, explicit, limit))
                for bucket, limit in policy.tokens
            )
        charges = policy.requests + tokens
        budgets: list[Budget] = []
        if budgeted:
            assert size is not None
            per_message = self._overheads.per_message(model.name)
            worst = worst_cost(size, model, self._default_completion, per_message)
            if policy.key_budget is not None:
                spent = self._ledger.key(policy.key_id, view.spend)
                budgets.append(Budget(policy.key_counter, policy.key_budget, spent, worst))
            if policy.customer_budget is not None:
                spent = self._ledger.customer(policy.customer_id, view.spend)
                budgets.append(
                    Budget(policy.customer_counter, policy.customer_budget, spent, worst)
                )
        verdict, settler = await self._store.take(charges, budgets, request_id)
        headers = rate_headers(charges, len(policy.requests), verdict.levels)
        if not verdict.allowed:
            raise refusal(policy, charges, budgets, verdict, headers)
        if not budgets:  # what is spent counts for budgets only
            return Ticket(policy, request_id, tokens, (), settler, headers, FREE)
        return Ticket(
            policy, request_id, tokens, tuple(budgets), settler, headers, prices_of(model),
            model.name, size,
        )  # fmt: skip

    def settle(
        self,
        ticket: Ticket,
        prompt: int,
        completion: int,
        status: int,
        cached: int = 0,
    ) -> None:
        """Correct the token charges to what the engine counted, release the reservations and
        count the spend."""
        used = prompt + completion
        corrections: list[tuple[Charge, int]] = []
        for c in ticket.tokens:
            if used:
                actual = used
            elif status >= 400 and status != 499:
                actual = 0  # refused or failed before any work: the charge is given back
            else:
                actual = c.cost  # no usage seen (a client gone mid-stream): keep the charge
            if actual != c.cost:
                corrections.append((c, actual - c.cost))
        spends: list[Spend] = []
        if ticket.budgets:
            if ticket.size is not None and prompt and status < 400:
                self._overheads.learn(ticket.model, ticket.size, prompt)
            p = ticket.policy
            cost = micros_up(ticket.prices.cost(prompt, cached, completion))
            if cost:
                key_id = p.key_id if p.key_budget is not None else None
                customer_id = p.customer_id if p.customer_budget is not None else None
                self._ledger.add(ticket.request_id, key_id, customer_id, cost)
            spends = [Spend(b, ticket.request_id, cost) for b in ticket.budgets]
        if corrections or spends:
            ticket.settler.settle(corrections, spends)

    def _policy(self, key: KeyEntry, view: View) -> Policy | None:
        """The key's policy, built once per view (and month) and then looked up."""
        period = self._ledger.period
        if view is not self._policies_view or period is not self._policies_period:
            self._policies = {}
            self._policies_view, self._policies_period = view, period
        try:
            return self._policies[key.key_id]
        except KeyError:
            customer = view.customers.get(key.customer_id)
            policy = policy_of(key, customer.limits if customer else None, period)
            self._policies[key.key_id] = policy
            return policy


def policy_of(key: KeyEntry, customer: Limits | None, period: Period) -> Policy | None:
    """The buckets and budgets of `key` and of its customer's `Limits` (or None)."""
    k = key.limits
    tag = "{c:" + key.customer_id + "}"  # one Redis cluster slot for a request's keys
    mine = f"{tag}:k:{key.key_id}"
    requests: list[Charge] = []
    tokens: list[tuple[str, int]] = []
    if k.rpm is not None:
        requests.append(Charge(f"{mine}:rpm", k.rpm, 1))
    if k.tpm is not None:
        tokens.append((f"{mine}:tpm", k.tpm))
    if customer is not None:
        if customer.rpm is not None:
            requests.append(Charge(f"{tag}:rpm", customer.rpm, 1))
        if customer.tpm is not None:
            tokens.append((f"{tag}:tpm", customer.tpm))
    key_budget = k.monthly_budget_micros
    customer_budget = customer.monthly_budget_micros if customer is not None else None
    if not requests and not tokens and key_budget is None and customer_budget is None:
        return None
    return Policy(
        key_id=key.key_id,
        customer_id=key.customer_id,
        period=period,
        key_buckets=mine,
        requests=tuple(requests),
        tokens=tuple(tokens),
        key_budget=key_budget,
        customer_budget=customer_budget,
        key_counter=f"{mine}:spend:{period}",
        customer_counter=f"{tag}:spend:{period}",
    )


def rate_headers(
    charges: Sequence[Charge], n_requests: int, levels: Sequence[float]
) -> dict[str, str]:
    """OpenAI's `x-ratelimit-*` headers for the tightest requests and tokens buckets."""
    headers: dict[str, str] = {}
    for kind, start, end in (("requests", 0, n_requests), ("tokens", n_requests, len(charges))):
        if start == end:
            continue
        best = start
        left = remaining(charges[start].limit, levels[start])
        for i in range(start + 1, end):
            other = remaining(charges[i].limit, levels[i])
            if other < left:
                best, left = i, other
        headers["x-ratelimit-limit-" + kind] = str(charges[best].limit)
        headers["x-ratelimit-remaining-" + kind] = str(left)
        headers["x-ratelimit-reset-" + kind] = duration(levels[best])
    return headers


def refusal(
    policy: Policy,
    charges: Sequence[Charge],
    budgets: Sequence[Budget],
    verdict: Verdict,
    headers: dict[str, str],
) -> QuotaExceeded | RateLimited:
    """The 429 for a refused request."""
    if verdict.exhausted >= 0:
        b = budgets[verdict.exhausted]
        whose = (
            f"key {policy.key_id}"
            if b.counter == policy.key_counter
            else f"customer {policy.customer_id}"
        )
        return QuotaExceeded(
            f"You exceeded your current quota: the monthly budget of {whose} is "
            f"${micros_usd(b.limit)}; ${micros_usd(verdict.spent)} is spent this month and "
            f"${micros_usd(verdict.reserved)} reserved by requests in flight, and this request "
            f"may cost up to ${micros_usd(b.cost)}. Lower max_tokens, raise the budget, or "
            "wait for next month.",
            headers={**headers, "x-should-retry": "false"},
        )
    c = charges[verdict.refused]
    kind = "requests" if verdict.refused < len(policy.requests) else "tokens"
    unit = "requests per min (RPM)" if kind == "requests" else "tokens per min (TPM)"
    mine = c.bucket.startswith(policy.key_buckets)
    whose = f"key {policy.key_id}" if mine else f"customer {policy.customer_id}"
    if verdict.never:
        return RateLimited(
            f"Request too large for {whose} on {unit}: Limit {c.limit}, Requested {c.cost}. "
            "Lower max_tokens or the prompt.",
            kind,
            {**headers, "x-should-retry": "false"},
        )
    used = c.limit - remaining(c.limit, verdict.levels[verdict.refused])
    wait_ms = max(1, math.ceil(verdict.retry_after_ms))
    return RateLimited(
        f"Rate limit reached for {whose} on {unit}: Limit {c.limit}, Used {used}, "
        f"Requested {c.cost}. Please try again in {duration(wait_ms)}.",
        kind,
        {
            **headers,
            "retry-after": str(math.ceil(wait_ms / 1000)),
            "retry-after-ms": str(wait_ms),
        },
    )


def duration(ms: float) -> str:
    """A duration as OpenAI writes it in reset headers: `20ms`, `1.5s`, `6m0s`."""
    if ms < 1000:
        return f"{math.ceil(ms)}ms"
    seconds = round(ms / 1000, 3)
    if seconds < 60:
        return f"{seconds:g}s"
    minutes, seconds = divmod(seconds, 60)
    return f"{int(minutes)}m{round(seconds, 3):g}s"
