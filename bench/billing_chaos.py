"""Billing under chaos: every token the engines reported to clients is billed once, although a
gateway is SIGKILLed and the control plane killed mid-run; the invoices match to the token and
the cent.

    python bench/billing_chaos.py [--requests 10000] [--concurrency 16] [--max-tokens 8]
    python bench/billing_chaos.py --requests 200    # a smoke run, about 40 s

Builds the stack as an operator runs it, each part its own process: `hashgrid server` on a
fresh PostgreSQL database (`billing_chaos_<hex>`, dropped at the end), a site and the generated
tiny llama GGUF (`hashgrid.models.tiny`) in the catalog, deployed, priced in the price book; a
real `hashgrid agent` joined to the site, serving it on the real llama.cpp engine; two
`hashgrid gateway` processes on their own ports and homes, sharing limits in Redis under a
prefix of their own. A customer signs up and makes a key through the REST API. Then
`--requests` chat completions (`max_tokens` 4 to `--max-tokens`, varied prompts, about half of
them streamed with OpenAI's `stream_options.include_usage`) go out with the official `openai`
AsyncOpenAI client, `--concurrency` at a time, spread over the two gateways by a client-side
balancer that sends nothing to a gateway while it refuses connections (as a TCP load
balancer's health check does). Each request carries its own `x-request-id`, which its usage
record keeps (`client_request_id`).

The chaos: when 30% of the requests have finished, gateway A is SIGKILLed (as soon as its
journal of open streams holds some, within 5 s: right after a sync tick, so that streams it
journaled are cut, and others end before the kill, their final record spooled before their
journaled one) and started again a second later on the same port and home (its usage spool);
at 60%, the control plane is SIGKILLed and started again at once. No request is retried: one a
client saw fail is "cut".

Then, once both gateways' spools are empty (read on disk: acknowledged up to the end of the
last segment, no journal of open streams) and the stored totals stopped changing (or after
`--drain-timeout`), it reads every usage record as the platform admin (`GET /api/v1/usage`)
and the totals (`GET /api/v1/usage/summary`), and prints:
- the tokens the engines reported for the answered requests (each answer's `usage`, or its
  stream's final chunk, as the client got it), the tokens stored for those requests, and the
  difference, which must be 0; how many answered requests have no record, a record with other
  counts, or two records (each must be 0);
- the cut requests, apart, by what happened to them: refused (the gateway was down: never
  reached it, never billed) or cut in flight by the kill; of those, the ones with a stored
  record (a stream the gateway journaled as open at its last sync tick, status 499; or an
  answer spooled just before the kill that never reached the client) and the ones without;
- the stored totals against the answered plus the cut requests' records (difference 0: no
  record of a request the bench did not send, none counted twice), their cost against their
  tokens at the price book's prices (difference 0) and the records no price covered (0);
- the invoice figures (`check_invoices`): invoices are issued for ended months only, so the
  customer's records are moved a calendar month back in the database first (`started_at`
  alone: each record keeps the prices it was charged); then its invoice of that month is
  issued, and the tokens on it are compared with those the engines reported (plus those
  stored for cut requests), the invoice with its recomputation (cents) and the month's ledger
  checked to balance (cents). Each difference must be 0; the bench exits 1 otherwise.

The machine is small and shared: the request rate is this run's; the differences must be 0.
PostgreSQL: HASHGRID_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test);
Redis: HASHGRID_TEST_REDIS_URL (default redis://127.0.0.1:6379/0).
"""

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path

import asyncpg
import httpx
import httpx2
import openai
import redis
from openai.types.chat import ChatCompletionMessageParam

from hashgrid.billing.periods import Period
from hashgrid.client import ApiError, HashgridClient
from hashgrid.common.net import free_port
from hashgrid.contracts.api.access import TokenCreate
from hashgrid.contracts.api.accounts import SignUp
from hashgrid.contracts.api.billing import InvoiceIssue
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.prices import PriceCreate
from hashgrid.contracts.api.sites import SiteCreate
from hashgrid.contracts.api.usage import UsageOut, UsageSummaryQuery
from hashgrid.gateway.metering import ACKED, JOURNAL, SEGMENT_SUFFIX
from hashgrid.models.tiny import make_tiny_gguf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from tenancy import ADMIN_TOKEN, Server

from support import postgres
from support.engines import kill_engines_under
from support.live import AgentProcess, GatewayProcess, wait_until

MODEL = "tiny"
SITE = "chaos-site"
CUSTOMER = "chaos-customer"
PASSWORD = "bench-billing-chaos"
REDIS_URL = os.environ.get("HASHGRID_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# USD per million tokens, odd enough that each record's cost has fractions of a cent.
PRICE_PROMPT, PRICE_COMPLETION = Decimal("3.37"), Decimal("12.13")
MTOK = 1_000_000
KILL_GATEWAY_AT, KILL_SERVER_AT = 0.3, 0.6
WORDS = ("the", "grid", "hashes", "blocks", "while", "the", "model", "streams", "tokens", "to",
         "every", "customer")  # fmt: skip


# ------------------------------------------------------------------------------ the stack


@dataclass
class Stack:
    """The processes of the run and what the load needs of them."""

    tmp: Path
    database_url: str
    dsn: str  # the same database, for asyncpg
    server: Server
    server_port: int
    admin: HashgridClient
    gateways: list[GatewayProcess] = field(default_factory=list)
    gateway_settings: dict[str, str] = field(default_factory=dict)
    gateway_token: str = ""
    agent: AgentProcess | None = None
    api_key: str = ""
    key_id: str = ""
    customer_id: str = ""

    def start_gateway(self, name: str, port: int) -> GatewayProcess:
        return GatewayProcess(
            self.server.url, self.gateway_token, self.tmp / name, port, self.gateway_settings
        )

    def kill_gateway(self, index: int) -> str:
        """SIGKILL gateway `index` once its journal holds open streams (within 5 s), and start it
        again a second later on its port and home; what its spool held that the server did not
        have yet."""
        old = self.gateways[index]
        deadline = time.monotonic() + 5
        while not journaled(old.home) and time.monotonic() < deadline:
            time.sleep(0.005)
        old.proc.kill()
        old.proc.wait(10)
        records, streams = unshipped(old.home)
        time.sleep(1.0)
        port = int(old.url.rsplit(":", 1)[1])
        self.gateways[index] = self.start_gateway(old.home.name, port)
        return f"its spool held {records} records not yet shipped, {streams} open streams journaled"

    def kill_server(self) -> str:
        """SIGKILL the control plane and start it again on its database, home and port; what the
        gateways' spools held when it answered again."""
        self.server.proc.kill()
        self.server.proc.wait(10)
        self.server = Server(self.database_url, self.tmp / "server", self.server_port)
        held = sum(unshipped(g.home)[0] for g in self.gateways)
        return f"the spools held {held} records not yet shipped when it answered again"


@contextmanager
def stack(tmp: Path, gateways: int) -> Iterator[Stack]:
    """The control plane on a fresh PostgreSQL database, the model deployed and priced, an agent
    serving it, `gateways` gateways sharing Redis, a customer and its key; all stopped after."""
    prefix = f"billing-chaos-{os.getpid()}"
    with postgres.fresh_database("billing_chaos") as database, ExitStack() as cleanup:
        url = postgres.sqlalchemy_url(database)
        dsn = postgres.ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
        port = free_port()
        server = Server(url, tmp / "server", port)
        admin = HashgridClient(server.url, ADMIN_TOKEN)
        s = Stack(tmp, url, dsn, server, port, admin)
        cleanup.callback(lambda: s.server.stop())
        cleanup.callback(admin.close)
        s.admin.create_site(SiteCreate(name=SITE, region="us-south", country="US", power_mw=1.0))
        weights = make_tiny_gguf(tmp / "tiny-llama.gguf")
        size = weights.stat().st_size
        s.admin.add_model(ModelCreate(name=MODEL, source=str(weights), size_bytes=size))
        set_prices(s.admin)
        s.admin.deploy(DeploymentCreate(model=MODEL))

        join = s.admin.create_join_token(SITE).token
        s.agent = AgentProcess(s.server.url, tmp / "agent", join, "chaos-node")
        cleanup.callback(lambda: stop_agent(s.agent, tmp / "agent"))

        s.gateway_token = s.admin.create_token(TokenCreate(name="gateways", role="gateway")).token
        s.gateway_settings = {
            "redis_url": REDIS_URL,
            "redis_prefix": prefix,
            "log_level": "warning",
            "access_log": "false",
        }
        cleanup.callback(lambda: drop_redis_keys(prefix))
        for i in range(gateways):
            s.gateways.append(s.start_gateway(f"gateway-{'AB'[i]}", free_port()))
        cleanup.callback(lambda: [g.stop() for g in s.gateways])

        with HashgridClient(s.server.url, None) as anyone:
            signed = anyone.sign_up(
                SignUp(
                    email="ada@chaos.bench",
                    password=PASSWORD,
                    organization=CUSTOMER,
                    kind="customer",
                )
            )
        with HashgridClient(s.server.url, signed.token) as customer:
            key = customer.create_key(KeyCreate(name="chaos"))
        s.api_key, s.key_id, s.customer_id = key.key, key.id, key.customer_id

        began = time.monotonic()
        for g in s.gateways:
            wait_until(lambda g=g: g.ready_replicas(MODEL) >= 1, 300, f"{MODEL} routable")
        print(
            f"the engine serves {MODEL} through {gateways} gateways "
            f"(routable {time.monotonic() - began:.0f} s after the gateways started)",
            flush=True,
        )
        yield s


def set_prices(admin: HashgridClient) -> None:
    """The model's price per million tokens in the price book (both tiers), from now on: every
    answered request costs something."""
    admin.add_prices(PriceCreate(model=MODEL, prompt=PRICE_PROMPT, completion=PRICE_COMPLETION))


def stop_agent(agent: AgentProcess | None, home: Path) -> None:
    if agent is not None and agent.proc.poll() is None:
        agent.terminate()
    kill_engines_under(home)  # an engine outlives an agent that did not stop it


def drop_redis_keys(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
    finally:
        client.close()


def unshipped(home: Path) -> tuple[int, int]:
    """A gateway's usage records not yet acknowledged by the server and the open streams in its
    journal, read on disk (the spool's layout: `gateway/metering.py`)."""
    spool = home / "usage-spool"
    try:
        segment, offset = (int(v) for v in (spool / ACKED).read_text().split())
    except FileNotFoundError:
        segment, offset = 0, 0
    records = 0
    for path in spool.glob(f"*{SEGMENT_SUFFIX}"):
        n = int(path.name.removesuffix(SEGMENT_SUFFIX))
        with suppress(FileNotFoundError), path.open("rb") as f:  # deleted once acknowledged
            if n >= segment:
                f.seek(offset if n == segment else 0)
                records += f.read().count(b"\n")
    return records, journaled(home)


def journaled(home: Path) -> int:
    """The open streams a gateway's journal holds: what its last sync tick wrote."""
    try:
        return (home / "usage-spool" / JOURNAL).read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


# ------------------------------------------------------------------------------- the load


@dataclass
class Outcome:
    """What the client saw of one request."""

    stream: bool
    gateway: str
    prompt: int = 0  # the engine's counts, as the answer (or the stream's last chunk) said
    completion: int = 0
    answered: bool = False
    error: str = ""  # why not answered: the exception the client got
    refused: bool = False  # the connection was refused: the gateway was down
    chunks: int = 0  # a stream's content chunks that reached the client


class Balancer:
    """Spreads requests over the gateways, round robin, skipping one that refused a connection
    until its /healthz answers again: what a load balancer in front of gateways does."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self.clients = [self._client(g) for g in stack.gateways]
        self._down: set[int] = set()
        self._next = 0

    def _client(self, gateway: GatewayProcess) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{gateway.url}/v1", api_key=self._stack.api_key, max_retries=0, timeout=120
        )

    async def pick(self) -> int:
        while True:
            for _ in self.clients:
                i, self._next = self._next, (self._next + 1) % len(self.clients)
                if i not in self._down:
                    return i
            await asyncio.sleep(0.05)

    def refused(self, i: int) -> None:
        self._down.add(i)

    async def watch(self) -> None:
        """Bring a gateway back once it answers its health check."""
        async with httpx.AsyncClient(timeout=1) as http:
            while True:
                for i in list(self._down):
                    with suppress(httpx.HTTPError):
                        url = self._stack.gateways[i].url
                        if (await http.get(f"{url}/healthz")).status_code == 200:
                            self._down.discard(i)
                await asyncio.sleep(0.1)

    async def close(self) -> None:
        for c in self.clients:
            await c.close()


async def one_request(balancer: Balancer, i: int, max_tokens: int) -> tuple[str, Outcome]:
    """Request `i`: streamed or not, its prompt and `max_tokens` drawn from its own seed."""
    rid = f"chaos-{i:06d}"
    draw = random.Random(i)
    g = await balancer.pick()
    x = Outcome(stream=draw.random() < 0.5, gateway="AB"[g])
    client = balancer.clients[g]
    words = " ".join(draw.choices(WORDS, k=draw.randint(3, 20)))
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": f"request {i}: {words}"}
    ]
    tokens, headers = draw.randint(4, max_tokens), {"x-request-id": rid}
    try:
        if x.stream:
            stream = await client.chat.completions.create(
                model=MODEL,
                messages=messages,
                max_tokens=tokens,
                extra_headers=headers,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    x.chunks += 1
                if chunk.usage is not None:
                    x.prompt, x.completion = (
                        chunk.usage.prompt_tokens,
                        chunk.usage.completion_tokens,
                    )
                    x.answered = True
            if not x.answered:
                x.error = "the stream ended without its usage chunk"
        else:
            answer = await client.chat.completions.create(
                model=MODEL, messages=messages, max_tokens=tokens, extra_headers=headers
            )
            assert answer.usage is not None, "an answer without usage"
            x.prompt, x.completion = answer.usage.prompt_tokens, answer.usage.completion_tokens
            x.answered = True
    except openai.APIConnectionError as e:
        x.error = f"{type(e.__cause__ or e).__name__}: {e.__cause__ or e}"
        x.refused = isinstance(e.__cause__, httpx2.ConnectError)  # the openai client's httpx
        if x.refused:
            balancer.refused(g)
    except openai.APIError as e:
        x.error = f"{type(e).__name__}: {e}"
    return rid, x


@dataclass
class Run:
    outcomes: dict[str, Outcome]
    seconds: float
    events: list[str]


async def drive(s: Stack, requests: int, concurrency: int, max_tokens: int) -> Run:
    """Send the requests, `concurrency` at a time; kill gateway A at 30% and the server at 60%."""
    balancer = Balancer(s)
    watcher = asyncio.create_task(balancer.watch())
    outcomes: dict[str, Outcome] = {}
    events: list[str] = []
    finished = asyncio.Condition()
    queue = iter(range(requests))

    async def worker() -> None:
        for i in queue:
            rid, x = await one_request(balancer, i, max_tokens)
            async with finished:
                outcomes[rid] = x
                finished.notify_all()

    async def chaos() -> None:
        acts: list[tuple[float, str, Callable[[], str]]] = [
            (
                KILL_GATEWAY_AT,
                "gateway A SIGKILLed, restarted 1 s later",
                partial(s.kill_gateway, 0),
            ),
            (KILL_SERVER_AT, "control plane SIGKILLed and restarted", s.kill_server),
        ]

        def reached(share: float) -> bool:
            return len(outcomes) >= share * requests

        for share, what, act in acts:
            async with finished:
                await finished.wait_for(partial(reached, share))
            at, began = len(outcomes), time.monotonic()
            detail = await asyncio.to_thread(act)
            took = time.monotonic() - began
            events.append(f"{what} at request {at:,} (took {took:.1f} s): {detail}")
            print(f"  {events[-1]}", flush=True)

    began = time.monotonic()
    progress = asyncio.create_task(report_progress(outcomes, requests))
    chaos_task = asyncio.create_task(chaos())
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.monotonic() - began
    for task in (progress, watcher):
        task.cancel()
    await chaos_task  # the server may still be coming back when the last request ends
    await balancer.close()
    return Run(outcomes, seconds, events)


async def report_progress(outcomes: dict[str, Outcome], requests: int) -> None:
    began = time.monotonic()
    while True:
        await asyncio.sleep(15)
        done = len(outcomes)
        failed = sum(not x.answered for x in outcomes.values())
        print(
            f"  {done:>7,} / {requests:,} requests, {failed} cut, "
            f"{done / (time.monotonic() - began):.0f} req/s",
            flush=True,
        )


# -------------------------------------------------------------------------- the figures


def totals(s: Stack, since: datetime) -> tuple[int, int, int, Decimal]:
    """requests, prompt and completion tokens and cost stored for the key, as summed by
    `GET /api/v1/usage/summary` (the platform admin)."""
    query = UsageSummaryQuery(
        group_by=["model"], key_id=s.key_id, since=since, until=since + timedelta(days=1)
    )
    rows = s.admin.usage_summary(query)
    return (
        sum(r.requests for r in rows),
        sum(r.prompt_tokens for r in rows),
        sum(r.completion_tokens for r in rows),
        sum((r.cost_usd for r in rows), Decimal()),
    )


def drain(s: Stack, since: datetime, timeout_s: float) -> tuple[float, bool]:
    """Wait until both spools are empty and the stored totals held still for 3 s; the seconds
    it took and whether it got there before `timeout_s`."""
    began = time.monotonic()
    last, steady_since = None, time.monotonic()
    while time.monotonic() - began < timeout_s:
        now = totals(s, since)
        if now != last:
            last, steady_since = now, time.monotonic()
        empty = all(unshipped(g.home) == (0, 0) for g in s.gateways)
        if empty and time.monotonic() - steady_since >= 3.0:
            return time.monotonic() - began, True
        time.sleep(0.5)
    return time.monotonic() - began, False


@dataclass
class Tally:
    """What the usage figures found: whether every difference was 0, and the tokens (prompt,
    completion) that must be billed: those the engines reported for the answered requests, and
    those stored for cut ones (what reached their clients)."""

    exact: bool
    reported: tuple[int, int]
    cut_billed: tuple[int, int]


def report(s: Stack, run: Run, since: datetime, drained: tuple[float, bool]) -> Tally:
    """Print the usage figures."""
    outcomes = run.outcomes
    records: dict[str, list[UsageOut]] = {}
    for r in s.admin.usage(limit=10 * len(outcomes) + 1000):
        if r.customer_id == s.customer_id:
            records.setdefault(r.client_request_id or "", []).append(r)

    answered = {rid: x for rid, x in outcomes.items() if x.answered}
    cut = {rid: x for rid, x in outcomes.items() if not x.answered}
    streamed = sum(x.stream for x in outcomes.values())
    print(
        f"\n{len(outcomes):,} requests ({streamed:,} streamed) through {len(s.gateways)} "
        f"gateways in {run.seconds:.1f} s: {len(outcomes) / run.seconds:.1f} req/s"
    )
    for event in run.events:
        print(f"  {event}")
    seconds, ok = drained
    print(
        f"spools drained and totals steady {seconds:.1f} s after the last request"
        + ("" if ok else " -- NOT: timed out, the figures below may still move")
    )

    def stored(rid: str) -> tuple[int, int]:
        rs = records.get(rid, [])
        return sum(r.prompt_tokens for r in rs), sum(r.completion_tokens for r in rs)

    reported_p = sum(x.prompt for x in answered.values())
    reported_c = sum(x.completion for x in answered.values())
    stored_p = sum(stored(rid)[0] for rid in answered)
    stored_c = sum(stored(rid)[1] for rid in answered)
    missing = sum(rid not in records for rid in answered)
    twice = sum(len(records.get(rid, [])) > 1 for rid in answered)
    differ = [
        rid
        for rid, x in answered.items()
        if rid in records and stored(rid) != (x.prompt, x.completion)
    ]
    print(f"\nanswered requests: {len(answered):,}")
    print(f"{'':34} {'prompt':>10} {'completion':>11} {'total':>10}")
    line = "{:34} {:>10,} {:>11,} {:>10,}"
    print(
        line.format("tokens the engines reported", reported_p, reported_c, reported_p + reported_c)
    )
    print(line.format("tokens stored for them", stored_p, stored_c, stored_p + stored_c))
    print(
        line.format(
            "difference (must be 0)",
            stored_p - reported_p,
            stored_c - reported_c,
            stored_p + stored_c - reported_p - reported_c,
        )
    )
    print(
        f"answered requests with no record {missing}, with other counts {len(differ)}, "
        f"with two records {twice} (each must be 0)"
    )
    if differ:
        statuses = Counter(r.status_code for rid in differ for r in records[rid])
        streams = sum(outcomes[rid].stream for rid in differ)
        print(f"  those with other counts: {streams} streamed, stored with status {dict(statuses)}")

    report_cut(cut, records)

    n, p, c, cost = totals(s, since)
    priced = (p * PRICE_PROMPT + c * PRICE_COMPLETION) / MTOK
    unpriced = sum(not r.priced for rs in records.values() for r in rs)
    cut_p = sum(stored(rid)[0] for rid in cut)
    cut_c = sum(stored(rid)[1] for rid in cut)
    billed_cut = sum(rid in records for rid in cut)
    strangers = sum(len(rs) for rid, rs in records.items() if rid not in outcomes)
    print(
        f"\nstored in all (GET /api/v1/usage/summary): {n:,} records, {p:,} prompt + {c:,} "
        f"completion tokens, costing ${cost}"
    )
    print(
        f"  their tokens at ${PRICE_PROMPT} + ${PRICE_COMPLETION} per million: ${priced}, "
        f"difference ${cost - priced:f} (must be 0); records no price covered: {unpriced} "
        "(must be 0)"
    )
    print(
        f"  = answered {len(answered):,} records, {stored_p:,} + {stored_c:,} tokens"
        f" + cut and billed {billed_cut} records, {cut_p:,} + {cut_c:,} tokens"
    )
    unexplained = (
        n - len(answered) - billed_cut - twice,
        p - stored_p - cut_p,
        c - stored_c - cut_c,
    )
    print(
        f"  difference (must be 0): {unexplained[0]} records, {unexplained[1]} + "
        f"{unexplained[2]} tokens; records of requests not sent {strangers}"
    )
    differences = (stored_p - reported_p, stored_c - reported_c, missing, len(differ), twice,
                   *unexplained, strangers, cost - priced, unpriced)  # fmt: skip
    return Tally(ok and not any(differences), (reported_p, reported_c), (cut_p, cut_c))


def report_cut(cut: dict[str, Outcome], records: dict[str, list[UsageOut]]) -> None:
    """The requests a client saw fail, by what happened to them, and what was billed of each."""
    print(f"\ncut requests (the client saw an error; not retried): {len(cut):,}")
    if not cut:
        return
    kinds: dict[str, list[str]] = {}
    for rid, x in cut.items():
        if x.refused:
            kind = f"refused by gateway {x.gateway} while it was down"
        else:
            kind = f"{'streams' if x.stream else 'answers'} cut in flight on gateway {x.gateway}"
        kinds.setdefault(kind, []).append(rid)
    for kind, rids in sorted(kinds.items()):
        billed = [r for rid in rids for r in records.get(rid, [])]
        statuses = Counter(r.status_code for r in billed)
        prompt = sum(r.prompt_tokens for r in billed)
        completion = sum(r.completion_tokens for r in billed)
        chunks = sum(cut[rid].chunks for rid in rids)
        reached = f", {chunks} content chunks had reached their clients" if chunks else ""
        print(
            f"  {kind}: {len(rids)}{reached}; billed {len(billed)} (status {dict(statuses)}), "
            f"{prompt:,} prompt + {completion:,} completion tokens"
        )
    print(
        "  A request the gateway never answered is not billed: a refused one never reached it,\n"
        "  and one cut before its engine answered left no record. A stream open at the gateway's\n"
        "  last sync tick (usage_fsync_s, 1 s) was journaled (gateway/metering.py) and is billed,\n"
        "  status 499, for the content chunks that had then reached its client and its prompt\n"
        "  (the engine's count, or before it came the gateway's estimate from its length); a\n"
        "  younger one is not billed. An answer spooled just before the kill but never delivered\n"
        "  is billed as answered (status 200). The restarted gateway ships them from its spool."
    )
    errors = Counter(x.error.split(":")[0] for x in cut.values())
    print(f"  errors the clients got: {dict(errors)}")


def check_invoices(s: Stack, tally: Tally) -> bool:
    """The invoice figures: the tokens on the customer's invoices against those the engines
    reported, each invoice against its recomputation (cents), the ledger's balance (cents);
    whether every difference is 0.

    Invoices are issued for ended periods only, so the customer's records are first moved a
    calendar month back in the database (`started_at`, nothing else: each record keeps the
    prices it was charged at), into the last month, whose invoice may then be issued."""
    period = str(Period.of(datetime.now(UTC)).previous())
    moved = asyncio.run(date_back(s.dsn, s.customer_id))
    print(f"\ninvoices of {period} ({moved:,} records of the run dated a month back):")
    try:
        s.admin.issue_invoice(InvoiceIssue(customer=CUSTOMER, period=period))
    except ApiError as e:
        if e.status != 409:  # 409: the monthly pass issued it first
            raise
    listed = s.admin.list_invoices(period=period, customer=CUSTOMER)
    invoices = [s.admin.get_invoice(i.number) for i in listed if i.number is not None]
    lines = [line for i in invoices for line in i.lines]
    prompt = sum(x.quantity for x in lines if x.unit.endswith("prompt tokens"))
    completion = sum(x.quantity for x in lines if x.unit == "completion tokens")
    owed_p = tally.reported[0] + tally.cut_billed[0]
    owed_c = tally.reported[1] + tally.cut_billed[1]
    line = "{:44} {:>10,} {:>11,}"
    print(f"{'':44} {'prompt':>10} {'completion':>11}")
    print(line.format(f"tokens on the {len(invoices)} invoice(s)", prompt, completion))
    print(line.format("engines reported + stored for cut requests", owed_p, owed_c))
    print(line.format("difference (must be 0)", prompt - owed_p, completion - owed_c))
    differences: list[object] = [prompt - owed_p, completion - owed_c]
    for invoice in invoices:
        again = s.admin.recompute_invoice(str(invoice.number))
        differences.append(again.difference_cents)
        print(
            f"invoice {again.number}: ${again.stored_total_usd} stored, "
            f"${again.recomputed_total_usd} recomputed: difference {again.difference_cents} "
            "cents (must be 0)"
        )
    ledger = s.admin.ledger(period)
    differences.append(ledger.difference_usd)
    print(
        f"ledger of {period}: ${ledger.gross_usd} invoiced = ${ledger.earnings_usd} operators' "
        f"earnings + ${ledger.platform_share_usd} platform share + ${ledger.credits_usd} "
        f"credits: difference ${ledger.difference_usd} (must be 0)"
    )
    return bool(invoices) and not any(differences)


async def date_back(dsn: str, customer_id: str) -> int:
    """Move the customer's usage records a calendar month back; how many."""
    conn = await asyncpg.connect(dsn)
    try:
        done = await conn.execute(
            "UPDATE usage_records SET started_at = started_at - interval '1 month', "
            "received_at = received_at - interval '1 month' WHERE customer_id = $1",
            customer_id,
        )
    finally:
        await conn.close()
    return int(done.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=8, help="at least 4")
    parser.add_argument("--drain-timeout", type=float, default=120.0, help="seconds")
    args = parser.parse_args()
    if args.max_tokens < 4:
        parser.error("--max-tokens must be 4 or more")
    began = time.monotonic()
    since = datetime.now(UTC) - timedelta(minutes=1)
    with tempfile.TemporaryDirectory(prefix="hashgrid-chaos-") as tmp, stack(Path(tmp), 2) as s:
        try:
            print(
                f"sending {args.requests:,} requests, {args.concurrency} at a time ...", flush=True
            )
            run = asyncio.run(drive(s, args.requests, args.concurrency, args.max_tokens))
            drained = drain(s, since, args.drain_timeout)
            tally = report(s, run, since, drained)
            exact = check_invoices(s, tally) and tally.exact
        except BaseException:
            for log in sorted(Path(tmp).rglob("*.log")):
                print(
                    f"--- {log.relative_to(tmp)} (tail)\n{log.read_text(errors='replace')[-2000:]}"
                )
            raise
    print(f"\nthe whole bench took {time.monotonic() - began:.0f} s")
    sys.exit(0 if exact else 1)


if __name__ == "__main__":
    main()
