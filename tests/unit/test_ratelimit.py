"""The limiter core (GCRA buckets, budgets and their reservations) on an injected clock, in
both stores: in this process, and in the real local Redis (a unique key prefix per test)
through the Lua scripts. The same cases run through both, so the Lua decides exactly as the
Python does."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
import redis.asyncio as redis
from structlog.testing import capture_logs

from hashgrid.common.net import free_port
from hashgrid.gateway.limits import InProcess, Settler, Store
from hashgrid.gateway.redis_limits import RedisBuckets
from hashgrid.ratelimit import (
    HOLD_MS,
    PERIOD_MS,
    Budget,
    Charge,
    LocalBuckets,
    Spend,
    Verdict,
    decide,
    fits,
    remaining,
)

REDIS_URL = "redis://127.0.0.1:6379/0"
START_MS = 1_800_000_000_000.0


@dataclass
class Clock:
    now: float = START_MS

    def __call__(self) -> float:
        return self.now

    def advance(self, ms: float) -> None:
        self.now += ms


@dataclass
class Buckets:
    """One store under test, as a gateway sees it: take, then settle where the verdict says."""

    store: Store
    clock: Clock
    redis_stores: list[RedisBuckets] = field(default_factory=list)

    async def take(
        self, *charges: Charge, budgets: Sequence[Budget] = (), hold: str = "r0"
    ) -> Verdict:
        verdict, self.last_settler = await self.store.take(charges, budgets, hold)
        return verdict

    async def settle(
        self, corrections: Sequence[tuple[Charge, int]], spends: Sequence[Spend] = ()
    ) -> None:
        self.last_settler.settle(corrections, spends)
        for r in self.redis_stores:
            await r.flush()

    last_settler: Settler = field(init=False)


async def _drop(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"hg-test-{uuid.uuid4().hex[:12]}"
    yield name
    await _drop(name)


def redis_store(prefix: str, clock: Clock, url: str = REDIS_URL) -> RedisBuckets:
    return RedisBuckets(url, prefix, LocalBuckets(clock), clock, timeout_s=1.0, retry_s=60.0)


@pytest.fixture(params=["local", "redis"])
async def buckets(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[Buckets]:
    clock = Clock()
    if request.param == "local":
        yield Buckets(InProcess(LocalBuckets(clock)), clock)
        return
    store = redis_store(prefix, clock)
    try:
        yield Buckets(store, clock, [store])
    finally:
        await store.close()


RPM = Charge("k:rpm", 3, 1)


async def test_a_full_minute_may_be_taken_at_once_then_one_unit_per_interval(
    buckets: Buckets,
) -> None:
    levels = [(await buckets.take(RPM)).levels[0] for _ in range(3)]
    assert [remaining(3, level) for level in levels] == [2, 1, 0]
    refused = await buckets.take(RPM)
    assert (refused.allowed, refused.refused, refused.never) == (False, 0, False)
    assert refused.retry_after_ms == pytest.approx(20_000)
    buckets.clock.advance(19_999)
    assert not (await buckets.take(RPM)).allowed
    buckets.clock.advance(1)
    assert (await buckets.take(RPM)).allowed
    buckets.clock.advance(PERIOD_MS)
    assert remaining(3, (await buckets.take(RPM)).levels[0]) == 2, "a full minute refills it"


async def test_limits_that_do_not_divide_a_minute_still_allow_exactly_the_limit(
    buckets: Buckets,
) -> None:
    seven = Charge("k:rpm7", 7, 1)
    results = [(await buckets.take(seven)).allowed for _ in range(8)]
    assert results == [True] * 7 + [False]


async def test_a_refusal_charges_no_bucket(buckets: Buckets) -> None:
    """The customer's bucket is full: the request is refused and the key's bucket keeps its
    room, so another key of a roomier customer is not starved by it."""
    key = Charge("k:rpm", 5, 1)
    customer = Charge("c:rpm", 1, 1)
    assert (await buckets.take(key, customer)).allowed
    refused = await buckets.take(key, customer)
    assert (refused.allowed, refused.refused) == (False, 1)
    assert remaining(5, refused.levels[0]) == 4
    assert remaining(5, (await buckets.take(key)).levels[0]) == 3


async def test_a_cost_above_the_whole_limit_is_never_allowed(buckets: Buckets) -> None:
    verdict = await buckets.take(Charge("k:tpm", 100, 101))
    assert (verdict.allowed, verdict.never) == (False, True)
    assert (await buckets.take(Charge("k:tpm", 100, 100))).allowed


async def test_token_charges_are_corrected_to_the_tokens_used(buckets: Buckets) -> None:
    """Charged 600 of 1000 up front; the answer used 100, so 500 come back; a later answer that
    used more than its charge puts the bucket in debt until it drains."""
    estimate = Charge("k:tpm", 1000, 600)
    assert remaining(1000, (await buckets.take(estimate)).levels[0]) == 400
    await buckets.settle([(estimate, 100 - 600)])
    probe = Charge("k:tpm", 1000, 1)
    assert remaining(1000, (await buckets.take(probe)).levels[0]) == 899
    await buckets.settle([(probe, 1400)])
    refused = await buckets.take(probe)
    assert not refused.allowed
    assert refused.retry_after_ms == pytest.approx(502 * 60.0)  # 1502 of 1000: 502 over


async def test_a_budget_that_the_request_does_not_fit_refuses_before_any_bucket_is_charged(
    buckets: Buckets,
) -> None:
    budget = Budget("k:spend:2027-01", 1_000_000, 1_000_000, 0)
    verdict = await buckets.take(
        RPM, budgets=[Budget("c:spend:2027-01", 5_000_000, 500_000, 0), budget]
    )
    assert (verdict.allowed, verdict.exhausted, verdict.never) == (False, 1, True)
    assert (verdict.spent, verdict.reserved) == (1_000_000, 0)
    assert remaining(3, (await buckets.take(RPM)).levels[0]) == 2, "the refusal took nothing"


SPEND = "k:spend:2027-01"


def budget(spent: int, cost: int, limit: int = 1_000_000) -> Budget:
    return Budget(SPEND, limit, spent, cost)


async def test_a_request_is_admitted_only_if_its_worst_case_fits_what_is_left(
    buckets: Buckets,
) -> None:
    """$1 budget, $0.20 spent: a $0.50 worst case fits and is held; a $0.40 one then does not
    ($0.20 + $0.50 + $0.40 > $1) and is told what is spent and held; a $0.30 one fits exactly."""
    assert (await buckets.take(budgets=[budget(200_000, 500_000)], hold="r1")).allowed
    refused = await buckets.take(budgets=[budget(200_000, 400_000)], hold="r2")
    assert (refused.allowed, refused.exhausted, refused.never) == (False, 0, True)
    assert (refused.spent, refused.reserved) == (200_000, 500_000)
    assert (await buckets.take(budgets=[budget(200_000, 300_000)], hold="r3")).allowed
    assert not (await buckets.take(budgets=[budget(200_000, 1)], hold="r4")).allowed


async def test_settling_releases_the_reservation_and_counts_the_actual_cost(
    buckets: Buckets,
) -> None:
    """A $0.60 worst case that cost $0.10: once settled, $0.90 is left for the next request
    (the caller's known spend is $0.10 now; with Redis, its counter says so too)."""
    held = budget(0, 600_000)
    assert (await buckets.take(budgets=[held], hold="r1")).allowed
    assert not (await buckets.take(budgets=[budget(0, 500_000)], hold="r2")).allowed
    await buckets.settle([], [Spend(held, "r1", 100_000)])
    assert not (await buckets.take(budgets=[budget(100_000, 900_001)], hold="r3")).allowed
    verdict = await buckets.take(budgets=[budget(100_000, 900_000)], hold="r4")
    assert verdict.allowed


async def test_a_spent_budget_refuses_even_a_request_that_costs_nothing(buckets: Buckets) -> None:
    assert not (await buckets.take(budgets=[budget(1_000_000, 0)])).allowed
    assert not (await buckets.take(budgets=[budget(0, 0, limit=0)])).allowed
    assert (await buckets.take(budgets=[budget(999_999, 0)])).allowed


async def test_a_request_refused_by_a_bucket_reserves_nothing(buckets: Buckets) -> None:
    one = Charge("k:rpm1", 1, 1)
    assert (await buckets.take(one)).allowed
    refused = await buckets.take(one, budgets=[budget(0, 600_000)], hold="r1")
    assert (refused.allowed, refused.refused) == (False, 0)
    assert (await buckets.take(budgets=[budget(0, 1_000_000)], hold="r2")).allowed


async def test_a_reservation_never_settled_lapses_at_its_deadline(buckets: Buckets) -> None:
    """Its gateway died mid-request: the reservation holds the budget until its deadline."""
    assert (await buckets.take(budgets=[budget(0, 700_000)], hold="dead")).allowed
    assert not (await buckets.take(budgets=[budget(0, 700_000)], hold="r2")).allowed
    buckets.clock.advance(HOLD_MS - 1)
    assert not (await buckets.take(budgets=[budget(0, 700_000)], hold="r3")).allowed
    buckets.clock.advance(1)
    assert (await buckets.take(budgets=[budget(0, 700_000)], hold="r4")).allowed
    await buckets.settle([], [Spend(budget(0, 700_000), "dead", 0)])  # late: changes nothing
    assert not (await buckets.take(budgets=[budget(0, 300_001)], hold="r5")).allowed


async def test_key_and_customer_budgets_each_hold_the_request(buckets: Buckets) -> None:
    key = Budget("k:spend:2027-01", 1_000_000, 0, 400_000)
    customer = Budget("c:spend:2027-01", 10_000_000, 0, 400_000)
    assert (await buckets.take(budgets=[key, customer], hold="r1")).allowed
    assert (await buckets.take(budgets=[key, customer], hold="r2")).allowed
    refused = await buckets.take(budgets=[key, customer], hold="r3")
    assert (refused.exhausted, refused.reserved) == (0, 800_000)
    other_key = Budget("k2:spend:2027-01", 1_000_000, 0, 400_000)
    verdict = await buckets.take(budgets=[other_key, customer], hold="r4")
    assert verdict.allowed, "the customer's budget holds 3 x $0.40 of $10"


def test_admission_is_spend_plus_reservations_plus_worst_case_within_the_budget() -> None:
    assert fits(limit=100, spent=20, reserved=30, cost=50)
    assert not fits(limit=100, spent=20, reserved=30, cost=51)
    assert not fits(limit=100, spent=100, reserved=0, cost=0), "a spent budget refuses all"
    assert not fits(limit=0, spent=0, reserved=0, cost=0)


async def test_two_gateways_share_one_redis_bucket_exactly(prefix: str) -> None:
    """Concurrent takes from two gateways' stores on one Redis: exactly the limit is allowed."""
    clock = Clock()
    a, b = redis_store(prefix, clock), redis_store(prefix, clock)
    try:
        charge = Charge("k:rpm", 7, 1)
        verdicts = await asyncio.gather(*(s.take([charge], []) for s in [a, b] * 10))
        assert sum(v.allowed for v, _ in verdicts) == 7
        assert all(settler in (a, b) for _, settler in verdicts), "decided in Redis"
    finally:
        await a.close()
        await b.close()


async def test_spend_recorded_by_one_gateway_counts_against_the_budget_at_another(
    prefix: str,
) -> None:
    clock = Clock()
    a, b = redis_store(prefix, clock), redis_store(prefix, clock)
    try:
        for hold, actual in (("r1", 750_000), ("r2", 500_000)):
            assert (await a.take([], [budget(0, 0, limit=10_000_000)], hold))[0].allowed
            a.settle([], [Spend(budget(0, 0, limit=10_000_000), hold, actual)])
        await a.flush()
        verdict, _ = await b.take([RPM], [budget(0, 0)], "r3")
        assert (verdict.allowed, verdict.exhausted) == (False, 0)
        assert verdict.spent == 1_250_000
    finally:
        await a.close()
        await b.close()


async def test_two_gateways_reserve_one_redis_budget_exactly(prefix: str) -> None:
    """20 requests at once through two gateways, each of worst case $0.10, on a $1 budget:
    exactly 10 are admitted and hold the whole of it."""
    clock = Clock()
    a, b = redis_store(prefix, clock), redis_store(prefix, clock)
    try:
        verdicts = await asyncio.gather(
            *(s.take([], [budget(0, 100_000)], f"r{i}") for i, s in enumerate([a, b] * 10))
        )
        assert sum(v.allowed for v, _ in verdicts) == 10
        refused = [v for v, _ in verdicts if not v.allowed]
        assert all(v.reserved == 1_000_000 for v in refused)
    finally:
        await a.close()
        await b.close()


async def test_a_dead_gateways_reservation_lapses_in_redis(prefix: str) -> None:
    """A gateway reserves $0.80 of a $1 budget and dies before settling: another gateway is
    refused a $0.50 request until the reservation's deadline, then admitted, and the dead
    gateway's reservation is gone from Redis."""
    clock = Clock()
    hold_ms = 30_000.0
    dead = RedisBuckets(REDIS_URL, prefix, LocalBuckets(clock), clock, hold_ms=hold_ms)
    alive = RedisBuckets(REDIS_URL, prefix, LocalBuckets(clock), clock, hold_ms=hold_ms)
    admin = redis.Redis.from_url(REDIS_URL)
    try:
        assert (await dead.take([], [budget(0, 800_000)], "req_dead"))[0].allowed
        await dead.close()  # never settles
        refused, _ = await alive.take([], [budget(0, 500_000)], "req_1")
        assert (refused.allowed, refused.reserved) == (False, 800_000)
        clock.advance(hold_ms)
        admitted, settler = await alive.take([], [budget(0, 500_000)], "req_2")
        assert admitted.allowed
        assert settler is alive, "decided in Redis, not by a gateway's own buckets"
        holds = f"{prefix}:{SPEND}:holds"
        assert await admin.zrange(holds, 0, -1) == [b"req_2 500000"]
        assert await admin.get(f"{prefix}:{SPEND}:held") == b"500000"
    finally:
        await admin.aclose()
        await alive.close()


async def test_scripts_are_loaded_again_after_redis_forgets_them(prefix: str) -> None:
    clock = Clock()
    store = redis_store(prefix, clock)
    admin = redis.Redis.from_url(REDIS_URL)
    try:
        assert (await store.take([RPM], []))[0].allowed
        await admin.script_flush()
        assert (await store.take([RPM], []))[0].allowed
        store.settle([(RPM, -1)], [])
        await admin.script_flush()
        await store.flush()
        await store.flush()  # the settlement missed the script, was queued again, and lands now
        assert remaining(3, (await store.take([RPM], []))[0].levels[0]) == 1
    finally:
        await admin.aclose()
        await store.close()


async def test_unreachable_redis_fails_open_to_local_limits_with_one_warning() -> None:
    clock = Clock()
    store = redis_store("hg-test-none", clock, url=f"redis://127.0.0.1:{free_port()}/0")
    try:
        with capture_logs() as logs:
            verdicts = [await store.take([RPM], []) for _ in range(4)]
        assert [v.allowed for v, _ in verdicts] == [True, True, True, False], "local limits hold"
        assert all(isinstance(settler, LocalBuckets) for _, settler in verdicts)
        warnings = [e for e in logs if e["log_level"] == "warning"]
        assert len(warnings) == 1
        assert "failing open" in warnings[0]["event"]
    finally:
        await store.close()


def test_decide_is_the_same_for_any_order_of_budgets_and_charges() -> None:
    """A refused request reports the first refusing charge and waits for the slowest one."""
    charges = [Charge("a", 2, 1), Charge("b", 1, 1), Charge("c", 4, 1)]
    tats = [START_MS + 60_000, START_MS + 60_000, START_MS + 59_000]
    verdict = decide(charges, tats, [], START_MS)
    assert (verdict.allowed, verdict.refused) == (False, 0)
    assert verdict.retry_after_ms == pytest.approx(60_000)  # bucket b: a full minute
    assert verdict.levels == (60_000, 60_000, 59_000), "a refusal reports levels as they were"


async def test_on_redis_time_decisions_follow_the_order_redis_runs_them(prefix: str) -> None:
    """Without an injected clock the scripts read Redis's: exact remaining counts and waits,
    whichever gateway asked and however long its pipeline waited."""
    store = RedisBuckets(REDIS_URL, prefix, LocalBuckets(Clock()), timeout_s=1.0)
    try:
        verdicts = await asyncio.gather(*(store.take([RPM], []) for _ in range(4)))
        allowed = [v for v, _ in verdicts if v.allowed]
        assert sorted(remaining(3, v.levels[0]) for v in allowed) == [0, 1, 2]
        (refused,) = [v for v, _ in verdicts if not v.allowed]
        assert 19_000 < refused.retry_after_ms <= 20_000
    finally:
        await store.close()


async def test_a_gateways_queued_corrections_land_before_its_next_decision(prefix: str) -> None:
    clock = Clock()
    store = redis_store(prefix, clock)
    try:
        charge = Charge("k:tpm", 1000, 900)
        assert (await store.take([charge], []))[0].allowed
        store.settle([(charge, -800)], [])  # queued; no flush
        verdict, _ = await store.take([charge], [])
        assert verdict.allowed, "the correction went ahead of the decision"
        assert remaining(1000, verdict.levels[0]) == 0
    finally:
        await store.close()
