"""What a limit check costs the gateway: `Limiter.admit` then `settle`, per request.

    python bench/limiter_cost.py [--redis redis://127.0.0.1:6379/0] [--n 20000]

Cases: a key without limits (no decision at all); a key with rpm, tpm and a budget and a
customer with rpm (four buckets and a budget's reservation in one decision), in process and in
Redis. In Redis: the decision alone, one request at a time (what a request waits for: one
round trip), then decision and settlement (the correction and the reservation's release after
the answer, batched off the request's path), one at a time and 64 at once (what a busy gateway
pays per request). For reference, in
the same run: a bare Redis PING, and the common fixed-window check (pipelined INCR + EXPIRE),
each one round trip. Wall-clock figures on a shared machine: compare the lines of one run, not
with figures from elsewhere.
"""

import argparse
import asyncio
import itertools
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio as redis

from hashgrid.contracts.gateway import CustomerEntry, GatewayView, KeyEntry, Limits, RoutedModel
from hashgrid.gateway.limits import InProcess, Limiter, Store
from hashgrid.gateway.redis_limits import RedisBuckets
from hashgrid.gateway.spend import SpendLedger
from hashgrid.gateway.view import View
from hashgrid.ratelimit import LocalBuckets

BIG = 10**9  # limits no run reaches, so every check is a full, allowed decision
BODY = {
    "model": "tiny",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant. " * 8},
        {"role": "user", "content": "Summarise the following text in three sentences. " * 20},
    ],
    "max_tokens": 256,
}
MODEL = RoutedModel(
    name="tiny",
    deployment="d",
    replicas=[],
    price_prompt=100_000,
    price_completion=400_000,
)


def wall_ms() -> float:
    return time.time() * 1000


def view(limited: bool) -> tuple[View, KeyEntry]:
    limits = Limits(rpm=BIG, tpm=BIG, monthly_budget_micros=10**15) if limited else Limits()
    key = KeyEntry(key_id=uuid.uuid4().hex, key_hash="h", customer_id="c1", limits=limits)
    customers = [CustomerEntry(customer_id="c1", limits=Limits(rpm=BIG))] if limited else []
    return View.of(GatewayView(revision=1, models=[MODEL], keys=[key], customers=customers)), key


async def per_check_us(
    store: Store,
    limited: bool,
    n: int,
    concurrency: int = 1,
    rounds: int = 5,
    settle: bool = True,
) -> float:
    """The median over `rounds` of µs per admit + settle, `concurrency` requests at a time."""
    limiter = Limiter(store, SpendLedger(wall_ms), 256)
    v, key = view(limited)

    ids = itertools.count()

    async def one() -> None:
        ticket = await limiter.admit(key, v, MODEL, BODY, f"req_{next(ids)}")
        if ticket is not None and settle:
            limiter.settle(ticket, 300, 200, 200)

    async def worker(count: int) -> None:
        for _ in range(count):
            await one()

    await worker(min(n, 200))  # warm: scripts loaded, connections open
    figures = []
    for _ in range(rounds):
        started = time.perf_counter()
        await asyncio.gather(*(worker(n // concurrency) for _ in range(concurrency)))
        figures.append((time.perf_counter() - started) / n * 1e6)
    return statistics.median(figures)


async def round_trip_us(
    op: Callable[[], Awaitable[object]], n: int, concurrency: int = 1, rounds: int = 5
) -> float:
    async def worker(count: int) -> None:
        for _ in range(count):
            await op()

    await worker(min(n, 200))
    figures = []
    for _ in range(rounds):
        started = time.perf_counter()
        await asyncio.gather(*(worker(n // concurrency) for _ in range(concurrency)))
        figures.append((time.perf_counter() - started) / n * 1e6)
    return statistics.median(figures)


async def main(url: str, n: int) -> None:
    local = InProcess(LocalBuckets(wall_ms))
    print(f"{'case':58} µs/check")
    print(f"{'in process, key without limits':58} {await per_check_us(local, False, n):8.2f}")
    print(f"{'in process, 4 buckets + budget':58} {await per_check_us(local, True, n):8.2f}")
    prefix = f"hg-bench-{uuid.uuid4().hex[:8]}"
    shared = RedisBuckets(url, prefix, LocalBuckets(wall_ms), timeout_s=2.0)
    flusher = asyncio.create_task(shared.run())
    client = redis.Redis.from_url(url)
    try:
        label = "redis, 4 buckets + budget, decision only (request waits)"
        print(f"{label:58} {await per_check_us(shared, True, n // 4, settle=False):8.2f}")
        for concurrency in (1, 64):
            label = f"redis, 4 buckets + budget, {concurrency:>2} at once (+ settle)"
            us = await per_check_us(shared, True, n // 4, concurrency)
            print(f"{label:58} {us:8.2f}")
        for concurrency in (1, 64):

            async def incr_expire() -> None:
                async with client.pipeline(transaction=False) as pipe:
                    pipe.incr(f"{prefix}:fixed")
                    pipe.expire(f"{prefix}:fixed", 60)
                    await pipe.execute()

            label = f"reference: redis INCR+EXPIRE pipeline, {concurrency:>2} at once"
            print(f"{label:58} {await round_trip_us(incr_expire, n // 4, concurrency):8.2f}")
            label = f"reference: redis PING, {concurrency:>2} at once"
            print(f"{label:58} {await round_trip_us(client.ping, n // 4, concurrency):8.2f}")
    finally:
        flusher.cancel()
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        await shared.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(args.redis, args.n))
