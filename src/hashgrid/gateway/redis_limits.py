"""Buckets in Redis, shared by every gateway that names the same Redis and key prefix.

A decision is one round trip: one Lua script (`TAKE`) reads the request's buckets and budget
counters, decides exactly as `hashgrid.ratelimit.decide` does, and charges the buckets, all
atomically, so two gateways can never both take the last unit. A decision asked while none is
on its way goes at once; decisions asked while one is share the next pipelined round trip (a
busy gateway pays one send and one receive per batch, not per request). Corrections after the
answer (tokens used less tokens charged, spend, reservations released) go through `SETTLE`,
queued and sent in pipelined batches by `run()`, off the request's path.

Budgets: each budget has a spend counter (integer micro-dollars, raised by every gateway's
settlements at once) and its reservations in flight: a ZSET of `hold micros` members scored by
their deadline, and their running total. TAKE first drops the reservations whose deadline has
passed (a gateway that died mid-request never settles) and subtracts them from the total, then
admits a request only if the larger of the caller's known spend and the counter, plus the
total, plus the request's worst case fits the budget; admitted, the worst case is added as the
request's member. SETTLE removes the member (subtracting it from the total only if it was still
there, so a lapsed one is never subtracted twice) and adds the actual cost to the counter. So
across gateways spend stays within the budget as long as no request costs more than its worst
case, and a dead gateway's reservations hold the budget until their deadline (`hold_ms`) only.

Time is Redis's own clock (`TIME` inside the scripts): every gateway's decisions are taken
on one clock, in the order Redis runs them, whatever the gateways' clocks say and however long
a decision waited for its pipeline. Tests pass a clock instead, so the same cases run through
this store and the in-process one. A gateway's own corrections that are still queued go
ahead of its next decision in the same round trip, so its next decision sees them.
Keys share a hash tag per customer (`{c:ID}`), so one request's keys sit in one cluster slot.

If Redis cannot be reached the gateway fails open to its own in-process buckets, logs a
warning once, and tries Redis again after `retry_s`: limits then hold per gateway, not across
gateways, until Redis is back. A gateway does not go down with its limiter.
"""

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from hashgrid.ratelimit import (
    EPSILON_MS,
    HOLD_MS,
    PERIOD_MS,
    Budget,
    Charge,
    Clock,
    LocalBuckets,
    Spend,
    Verdict,
)

log = structlog.get_logger("hashgrid.gateway.limits")

# Arguments travel as one space-separated string and the answer comes back as one: fewer
# pieces to encode and parse in the client, which is most of a round trip's cost here.
# KEYS: n buckets (TAT, ms), then 3 per budget: its spend counter (micro-dollars), its
#       reservations (a ZSET of `hold micros` scored by deadline, ms) and their total.
# ARGV[1]: now_ms (negative: Redis's clock) period_ms epsilon_ms n hold_ms, n x (limit cost),
#          m x (limit known_spend cost); ARGV[2]: the request's hold (its id).
# Returns: allowed refused exhausted never retry_ms spent reserved, n x level.
TAKE = """
local a = {}
for x in string.gmatch(ARGV[1], '%S+') do a[#a + 1] = tonumber(x) end
local now, period, eps, n, hold = a[1], a[2], a[3], a[4], a[5]
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local levels = {}
for i = 1, n do
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  levels[i] = (tat > now) and (tat - now) or 0
end
local answer = function(allowed, refused, exhausted, never, retry, spent, reserved)
  local reply = {allowed, refused, exhausted, never, string.format('%.17g', retry),
                 string.format('%.0f', spent), string.format('%.0f', reserved)}
  for i = 1, n do reply[#reply + 1] = string.format('%.17g', levels[i]) end
  return table.concat(reply, ' ')
end
local m = (#KEYS - n) / 3
for j = 1, m do
  local k = n + 3 * (j - 1)
  local b = 5 + 2 * n + 3 * (j - 1)
  local limit, known, cost = a[b + 1], a[b + 2], a[b + 3]
  local held = tonumber(redis.call('GET', KEYS[k + 3]) or '0')
  local lapsed = redis.call('ZRANGEBYSCORE', KEYS[k + 2], '-inf', now)
  if #lapsed > 0 then
    for _, member in ipairs(lapsed) do
      held = held - tonumber(string.match(member, '(%d+)$'))
    end
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 2], '-inf', now)
    if held > 0 then
      redis.call('SET', KEYS[k + 3], string.format('%.0f', held), 'KEEPTTL')
    else
      redis.call('DEL', KEYS[k + 3])
    end
  end
  local spent = math.max(known, tonumber(redis.call('GET', KEYS[k + 1]) or '0'))
  if not (spent < limit and spent + held + cost <= limit) then
    return answer(0, -1, j - 1, 1, 0, spent, held)
  end
end
local refused = -1
local retry = 0
local never = 0
local after = {}
for i = 1, n do
  local limit = a[4 + 2 * i]
  local cost = a[5 + 2 * i]
  local need = cost * period / limit
  local level = levels[i] + need
  if level > period + eps then
    if refused < 0 then refused = i - 1 end
    retry = math.max(retry, level - period)
    if need > period + eps then never = 1 end
  end
  after[i] = level
end
if refused >= 0 then
  return answer(0, refused, -1, never, retry, 0, 0)
end
for i = 1, n do
  levels[i] = after[i]
  redis.call('SET', KEYS[i], string.format('%.17g', now + after[i]),
             'PX', math.ceil(after[i]) + 1000)
end
for j = 1, m do
  local k = n + 3 * (j - 1)
  local cost = a[5 + 2 * n + 3 * j]
  local ttl = math.ceil(hold) + 1000
  if redis.call('ZADD', KEYS[k + 2], now + hold, ARGV[2] .. ' ' .. string.format('%.0f', cost))
     == 1 then
    redis.call('INCRBY', KEYS[k + 3], string.format('%.0f', cost))
  end
  redis.call('PEXPIRE', KEYS[k + 2], ttl)
  redis.call('PEXPIRE', KEYS[k + 3], ttl)
end
return answer(1, -1, -1, 0, 0, 0, 0)
"""

# KEYS: n buckets, then 3 per budget spent (as TAKE's).
# ARGV[1]: now_ms (negative: Redis's clock) period_ms n, n x (limit delta), counter_ttl_s,
#          m x (reserved actual); ARGV[1 + j]: spend j's reservation (`hold micros`).
SETTLE = """
local a = {}
for x in string.gmatch(ARGV[1], '%S+') do a[#a + 1] = x end
local now, period, n = tonumber(a[1]), tonumber(a[2]), tonumber(a[3])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
for i = 1, n do
  local limit = tonumber(a[2 + 2 * i])
  local delta = tonumber(a[3 + 2 * i])
  local tat = math.max(tonumber(redis.call('GET', KEYS[i]) or '0'), now) + delta * period / limit
  if tat > now then
    redis.call('SET', KEYS[i], string.format('%.17g', tat), 'PX', math.ceil(tat - now) + 1000)
  else
    redis.call('DEL', KEYS[i])
  end
end
local ttl = tonumber(a[4 + 2 * n])
for j = 1, (#KEYS - n) / 3 do
  local k = n + 3 * (j - 1)
  local reserved, actual = a[3 + 2 * n + 2 * j], a[4 + 2 * n + 2 * j]
  if redis.call('ZREM', KEYS[k + 2], ARGV[1 + j]) == 1 then
    if redis.call('DECRBY', KEYS[k + 3], reserved) <= 0 then redis.call('DEL', KEYS[k + 3]) end
  end
  if tonumber(actual) > 0 then
    redis.call('INCRBY', KEYS[k + 1], actual)
    redis.call('EXPIRE', KEYS[k + 1], ttl)
  end
end
return 1
"""

Asked = tuple[list[str], list[str], "asyncio.Future[bytes]"]  # keys, arguments, where it goes
COUNTER_TTL_S = 40 * 86400  # a month's spend counter outlives its month
MAX_QUEUED = 100_000  # settlements kept while Redis is slow; older ones are dropped


class RedisBuckets:
    """Shared buckets; falls back to `local` while Redis is unreachable."""

    def __init__(
        self,
        url: str,
        prefix: str,
        local: LocalBuckets,
        clock: Clock | None = None,
        timeout_s: float = 1.0,
        retry_s: float = 2.0,
        period_ms: float = PERIOD_MS,
        hold_ms: float = HOLD_MS,
    ) -> None:
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),  # fail open at once; `retry_s` paces the next try
        )
        self._prefix = prefix + ":"
        self._clock = clock
        self._local = local
        self._retry_s = retry_s
        self._period_ms = period_ms
        self._hold_ms = hold_ms
        self._down_until = 0.0
        self._down = False
        self._shas: dict[str, str] = {}
        self._queue: list[tuple[list[str], list[str]]] = []
        self._queued = asyncio.Event()
        self._asked: list[Asked] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._in_flight = 0  # round trips of TAKE on their way
        # Set while a batch of settlements is on its way: a decision waits for it, so that it
        # never overtakes, on another connection, a correction queued before it was asked.
        self._flushed: asyncio.Event | None = None

    async def take(
        self, charges: Sequence[Charge], budgets: Sequence[Budget], hold: str = ""
    ) -> tuple[Verdict, "RedisBuckets | LocalBuckets"]:
        """The verdict, and the buckets that gave it (where its settlement goes); an allowed
        request's budget reservations are held as `hold`."""
        if self._down and time.monotonic() < self._down_until:
            return self._local.take(charges, budgets, hold), self._local
        p = self._prefix
        keys = [p + c.bucket for c in charges]
        args = [self._now(), repr(self._period_ms), repr(EPSILON_MS), str(len(charges))]
        args.append(repr(self._hold_ms))
        for c in charges:
            args += (str(c.limit), str(c.cost))
        for b in budgets:
            keys += _budget_keys(p + b.counter)
            # A cost above the limit is refused whatever it is: bounded, it stays exact in
            # Lua's doubles.
            args += (str(b.limit), str(b.spent), str(min(b.cost, b.limit + 1)))
        try:
            reply = await self._ask(keys, [" ".join(args), hold])
        except (RedisError, OSError, TimeoutError) as e:
            self._went_down(e)
            return self._local.take(charges, budgets, hold), self._local
        if self._down:
            log.info("redis reachable again; limits are shared across gateways")
            self._down = False
        return _verdict(reply), self

    def settle(
        self, corrections: Sequence[tuple[Charge, int]], spends: Sequence[Spend] = ()
    ) -> None:
        """Queue the corrections and spends (reservations released, costs counted) of a
        request this store decided."""
        corrections = [(c, d) for c, d in corrections if d]
        if not corrections and not spends:
            return
        p = self._prefix
        keys = [p + c.bucket for c, _ in corrections]
        args = [self._now(), repr(self._period_ms), str(len(corrections))]
        for c, delta in corrections:
            args += (str(c.limit), str(delta))
        args.append(str(COUNTER_TTL_S))
        members = []
        for s in spends:
            keys += _budget_keys(p + s.budget.counter)
            args += (str(s.budget.cost), str(s.actual))
            members.append(f"{s.hold} {s.budget.cost}")
        if len(self._queue) >= MAX_QUEUED:
            del self._queue[: MAX_QUEUED // 10]
        self._queue.append((keys, [" ".join(args), *members]))
        self._queued.set()

    async def run(self) -> None:
        """Send queued settlements, all that are waiting in one pipelined round trip."""
        while True:
            await self._queued.wait()
            self._queued.clear()
            await self.flush()

    async def flush(self) -> None:
        batch, self._queue = self._queue, []
        if not batch:
            return
        self._flushed = flushed = asyncio.Event()
        try:
            sha = await self._sha("settle", SETTLE)
            async with self._redis.pipeline(transaction=False) as pipe:
                for keys, args in batch:
                    pipe.evalsha(sha, len(keys), *keys, *args)
                results = await pipe.execute(raise_on_error=False)
            self._settled(batch, results)
        except (RedisError, OSError, TimeoutError) as e:
            log.warning("redis unreachable; token corrections and spend not shared", n=len(batch))
            self._went_down(e)
        finally:
            flushed.set()
            if self._flushed is flushed:
                self._flushed = None

    def _now(self) -> str:
        return repr(self._clock()) if self._clock is not None else "-1"

    def _settled(self, batch: list[tuple[list[str], list[str]]], results: list[Any]) -> None:
        """Queue again the settlements that met a Redis without the script (restarted)."""
        missed = [b for b, r in zip(batch, results, strict=True) if isinstance(r, NoScriptError)]
        if missed:
            self._shas.pop("settle", None)
            self._queue[:0] = missed
            self._queued.set()

    async def close(self) -> None:
        await self._redis.aclose()

    async def _sha(self, name: str, source: str) -> str:
        sha = self._shas.get(name)
        if sha is None:
            sha = str(await self._redis.script_load(source))
            self._shas[name] = sha
        return sha

    async def _ask(self, keys: list[str], args: list[str]) -> bytes:
        """The TAKE script's answer. Alone, it goes at once; while others are on their way it
        joins every decision asked this loop turn in one pipelined round trip."""
        if self._in_flight == 0 and not self._asked:
            (result,) = await self._round_trip([(keys, args)])
            if isinstance(result, BaseException):
                raise result
            return bytes(result)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bytes] = loop.create_future()
        self._asked.append((keys, args, answer))
        if len(self._asked) == 1:
            loop.call_soon(self._send_asked)
        return await answer

    def _send_asked(self) -> None:
        asked, self._asked = self._asked, []
        task = asyncio.create_task(self._send(asked))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, asked: list[Asked]) -> None:
        results = await self._round_trip([(keys, args) for keys, args, _ in asked])
        for (_, _, answer), result in zip(asked, results, strict=True):
            if answer.done():
                continue  # the request went away meanwhile
            if isinstance(result, BaseException):
                answer.set_exception(result)
            else:
                answer.set_result(bytes(result))

    async def _round_trip(self, batch: list[tuple[list[str], list[str]]]) -> list[Any]:
        """TAKE's answer (or error) for each request of `batch`, in one round trip."""
        self._in_flight += 1
        try:
            results = await self._take_all(batch)
            if any(isinstance(r, NoScriptError) for r in results):
                self._shas.pop("take", None)  # Redis restarted: load it again, ask again
                results = await self._take_all(batch)
            return results
        except (RedisError, OSError, TimeoutError) as e:
            return [e] * len(batch)
        finally:
            self._in_flight -= 1

    async def _take_all(self, batch: list[tuple[list[str], list[str]]]) -> list[Any]:
        """TAKE for each of `batch`, after this gateway's queued settlements, in one pipeline."""
        sha = await self._sha("take", TAKE)
        if self._flushed is not None:
            await self._flushed.wait()
        settling, self._queue = self._queue, []
        if len(batch) == 1 and not settling:
            keys, args = batch[0]
            try:
                return [await self._redis.evalsha(sha, len(keys), *keys, *args)]
            except NoScriptError as e:
                return [e]
        settle_sha = await self._sha("settle", SETTLE) if settling else ""
        async with self._redis.pipeline(transaction=False) as pipe:
            for keys, args in settling:
                pipe.evalsha(settle_sha, len(keys), *keys, *args)
            for keys, args in batch:
                pipe.evalsha(sha, len(keys), *keys, *args)
            results = list(await pipe.execute(raise_on_error=False))
        self._settled(settling, results[: len(settling)])
        return results[len(settling) :]

    def _went_down(self, error: BaseException) -> None:
        if not self._down:
            log.warning(
                "redis unreachable; failing open to this gateway's own limits",
                error=f"{type(error).__name__}: {error}",
                retry_s=self._retry_s,
            )
        self._down = True
        self._down_until = time.monotonic() + self._retry_s


def _budget_keys(counter: str) -> tuple[str, str, str]:
    """A budget's keys in Redis: its spend counter, its reservations and their total."""
    return counter, counter + ":holds", counter + ":held"


def _verdict(reply: bytes) -> Verdict:
    allowed, refused, exhausted, never, retry, spent, reserved, *levels = reply.split()
    return Verdict(
        allowed=allowed == b"1",
        levels=tuple(float(level) for level in levels),
        refused=int(refused),
        exhausted=int(exhausted),
        retry_after_ms=float(retry),
        never=never == b"1",
        spent=int(spent),
        reserved=int(reserved),
    )
