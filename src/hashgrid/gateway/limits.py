"""Per-key and per-customer rate limits and budgets, decided before a request is forwarded.

A key may have requests-per-minute and tokens-per-minute limits and a monthly budget (USD);
its customer may have the same, over all its keys together. Every limit is a bucket of the
pure core (`hashgrid.ratelimit`): one decision takes from all of a request's buckets at once,
or from none. The buckets live in this process (`LocalBuckets`) or, with
`HASHGRID_GATEWAY_REDIS_URL`, in Redis (`RedisBuckets`), shared by every gateway there, one
round trip per decision. A key with no limits and a customer with none cost no decision at all.

Tokens are charged before the answer exists, as OpenAI and LiteLLM do: the prompt's length
(4 characters a token, plus 4 per message) plus `max_tokens` (or `max_completion_tokens`,
times `n`). Without `max_tokens` the completion is taken as `default_completion_tokens`, but
then never as more than the limit, so the request can always pass once the bucket has room.
When the answer is metered the charge is corrected to the tokens the engine counted (a failed
request gets its charge back). Budgets count only metered tokens at the model's prices, never
estimates: a request is refused once the month's spend reaches the budget, so the request that
crosses it completes (see `gateway/spend.py` for where spend figures come from).

Every answer to a limited key carries OpenAI's headers: `x-ratelimit-{limit,remaining,reset}-
{requests,tokens}`, for the tighter of the key's and its customer's limits. A refusal is a 429
in OpenAI's shape with `retry-after` (seconds) and `retry-after-ms`; where waiting cannot help
(a spent budget, a request larger than a whole minute's tokens) it says `x-should-retry: false`
instead, which the OpenAI SDKs obey.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hashgrid.billing.money import PICO_PER_USD
from hashgrid.contracts.gateway import KeyEntry, Limits, RoutedModel
from hashgrid.gateway.errors import QuotaExceeded, RateLimited
from hashgrid.gateway.spend import SpendLedger
from hashgrid.gateway.view import View
from hashgrid.ratelimit import Budget, Charge, LocalBuckets, Verdict, remaining

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4  # a chat template's role markers and separators


class Settler(Protocol):
    def settle(
        self, corrections: Sequence[tuple[Charge, int]], spends: Sequence[tuple[str, float]]
    ) -> None: ...


class Store(Protocol):
    """Where buckets live: in this process, or in Redis."""

    async def take(
        self, charges: Sequence[Charge], budgets: Sequence[Budget]
    ) -> tuple[Verdict, Settler]: ...


class InProcess:
    """The in-process store: buckets in a dict, decided in microseconds."""

    def __init__(self, local: LocalBuckets) -> None:
        self._local = local

    async def take(
        self, charges: Sequence[Charge], budgets: Sequence[Budget]
    ) -> tuple[Verdict, Settler]:
        return self._local.take(charges, budgets), self._local


@dataclass(frozen=True, slots=True)
class Policy:
    """A key's limits and its customer's, with the names of their buckets and counters."""

    key_id: str
    customer_id: str
    period: str
    key_buckets: str  # the prefix of the key's own buckets and counter
    requests: tuple[Charge, ...]  # cost 1: the key's rpm, the customer's rpm
    tokens: tuple[tuple[str, int], ...]  # bucket and tpm limit: the key's, the customer's
    key_budget: float | None
    customer_budget: float | None
    key_counter: str
    customer_counter: str


@dataclass(slots=True)
class Ticket:
    """An admitted request's charges, to be corrected when its answer is metered."""

    policy: Policy
    tokens: tuple[Charge, ...]
    settler: Settler
    headers: dict[str, str]
    price_prompt: int  # pico-dollars per token
    price_completion: int


class Limiter:
    def __init__(self, store: Store, ledger: SpendLedger, default_completion_tokens: int) -> None:
        self._store = store
        self._ledger = ledger
        self._default_completion = default_completion_tokens
        self._policies: dict[str, Policy | None] = {}
        self._policies_view: View | None = None
        self._policies_period = ""

    async def admit(
        self, key: KeyEntry, view: View, model: RoutedModel, body: dict[str, Any]
    ) -> Ticket | None:
        """Charge the request to its buckets, or raise a 429; None for a key without limits."""
        policy = self._policy(key, view)
        if policy is None:
            return None
        tokens: tuple[Charge, ...] = ()
        if policy.tokens:
            prompt, completion, explicit = estimate_tokens(body, self._default_completion)
            tokens = tuple(
                Charge(bucket, limit, token_cost(prompt, completion, explicit, limit))
                for bucket, limit in policy.tokens
            )
        charges = policy.requests + tokens
        budgets = []
        if policy.key_budget is not None:
            spent = self._ledger.key(policy.key_id, view.spend)
            budgets.append(Budget(policy.key_counter, policy.key_budget, spent))
        if policy.customer_budget is not None:
            spent = self._ledger.customer(policy.customer_id, view.spend)
            budgets.append(Budget(policy.customer_counter, policy.customer_budget, spent))
        verdict, settler = await self._store.take(charges, budgets)
        headers = rate_headers(charges, len(policy.requests), verdict.levels)
        if not verdict.allowed:
            raise refusal(policy, charges, budgets, verdict, headers)
        return Ticket(
            policy,
            tokens,
            settler,
            headers,
            model.price_prompt,
            model.price_completion,
        )

    def settle(
        self,
        ticket: Ticket,
        request_id: str,
        prompt: int,
        completion: int,
        status: int,
    ) -> None:
        """Correct the token charges to what the engine counted, and count the spend."""
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
        usd = (prompt * ticket.price_prompt + completion * ticket.price_completion) / PICO_PER_USD
        p = ticket.policy
        spends: list[tuple[str, float]] = []
        if usd > 0 and (p.key_budget is not None or p.customer_budget is not None):
            key_id = p.key_id if p.key_budget is not None else None
            customer_id = p.customer_id if p.customer_budget is not None else None
            self._ledger.add(request_id, key_id, customer_id, usd)
            if key_id is not None:
                spends.append((p.key_counter, usd))
            if customer_id is not None:
                spends.append((p.customer_counter, usd))
        if corrections or spends:
            ticket.settler.settle(corrections, spends)

    def _policy(self, key: KeyEntry, view: View) -> Policy | None:
        """The key's policy, built once per view (and month) and then looked up."""
        period = self._ledger.period
        if view is not self._policies_view or period != self._policies_period:
            self._policies = {}
            self._policies_view, self._policies_period = view, period
        try:
            return self._policies[key.key_id]
        except KeyError:
            customer = view.customers.get(key.customer_id)
            policy = policy_of(key, customer.limits if customer else None, period)
            self._policies[key.key_id] = policy
            return policy


def policy_of(key: KeyEntry, customer: Limits | None, period: str) -> Policy | None:
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
    customer_budget = customer.monthly_budget_usd if customer is not None else None
    if not requests and not tokens and k.monthly_budget_usd is None and customer_budget is None:
        return None
    return Policy(
        key_id=key.key_id,
        customer_id=key.customer_id,
        period=period,
        key_buckets=mine,
        requests=tuple(requests),
        tokens=tuple(tokens),
        key_budget=k.monthly_budget_usd,
        customer_budget=customer_budget,
        key_counter=f"{mine}:usd:{period}",
        customer_counter=f"{tag}:usd:{period}",
    )


def estimate_tokens(body: dict[str, Any], default_completion: int) -> tuple[int, int, bool]:
    """The prompt's tokens as estimated from its length, the completion's most, and whether
    the client set that most (`max_tokens`) itself."""
    chars = 0
    tokens = 0
    prompts = 1
    messages = body.get("messages")
    if isinstance(messages, list):
        tokens += TOKENS_PER_MESSAGE * len(messages)
        for m in messages:
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, str):
                chars += len(content)
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and isinstance(text := part.get("text"), str):
                        chars += len(text)
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        chars += len(prompt)
    elif isinstance(prompt, list) and prompt:
        if all(isinstance(p, int) for p in prompt):
            tokens += len(prompt)  # one prompt, as token ids
        else:
            prompts = len(prompt)  # a batch: strings, or lists of token ids
            for p in prompt:
                if isinstance(p, str):
                    chars += len(p)
                elif isinstance(p, list):
                    tokens += len(p)
    most = body.get("max_completion_tokens", body.get("max_tokens"))
    explicit = isinstance(most, int) and not isinstance(most, bool) and most > 0
    completion = int(most) if explicit and most is not None else default_completion
    n = body.get("n")
    choices = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
    prompt_tokens = tokens + (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN
    return prompt_tokens, completion * choices * prompts, explicit


def token_cost(prompt: int, completion: int, explicit: bool, limit: int) -> int:
    """The up-front charge to a `limit`-tpm bucket: the estimate, where the completion's part
    is a default (no `max_tokens`) never more than the limit, so the request can pass."""
    cost = max(1, prompt + completion)
    return cost if explicit else max(prompt, min(cost, limit))


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
            f"${b.limit_usd:.2f} and ${verdict.spent_usd:.2f} is spent this month. "
            "Raise the budget, or wait for next month.",
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
