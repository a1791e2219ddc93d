"""Forwarding one OpenAI request to a replica: choose, connect (retrying elsewhere before the
first byte), pass the answer through, meter it.

Where a compute contract reserves replicas of a model, the proxy counts the requests its holder
has in flight or waiting here, per model: while that count is not 0, other customers' requests
stay off the holder's replicas (`routing/reservations.py`), and wait, as for a cold start, when
those are all the model has."""

import asyncio
import contextlib
import functools
import time
from collections import Counter
from collections.abc import AsyncIterator, Set
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import structlog
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from hashgrid.contracts.gateway import (
    CLIENT_REQUEST_ID_LEN,
    MODEL_LEN,
    KeyEntry,
    RoutedModel,
    RouteReplica,
)
from hashgrid.gateway.access_log import AccessLog
from hashgrid.gateway.auth import authenticate_current
from hashgrid.gateway.demand import DemandMeter
from hashgrid.gateway.engine_errors import engine_error
from hashgrid.gateway.errors import (
    BadRequest,
    InternalError,
    ModelNotFound,
    NoReplica,
    OpenAIError,
    UpstreamFailed,
)
from hashgrid.gateway.estimates import estimate_tokens
from hashgrid.gateway.limits import Limiter, Ticket
from hashgrid.gateway.metering import UsageSpool, cached_count, clamp_text, token_count
from hashgrid.gateway.normalize import normalize
from hashgrid.gateway.request_ids import client_request_id, new_request_id
from hashgrid.gateway.spotcheck import SpotChecker
from hashgrid.gateway.sse import EventSplitter, event_json
from hashgrid.gateway.steering import (
    CLIENT_COUNTRY_HEADER,
    SITE_HEADER,
    candidates,
    client_country,
)
from hashgrid.gateway.upstreams import Upstream, Upstreams
from hashgrid.gateway.view import ViewWatcher
from hashgrid.routing import Holding, RouteRequest, RoutingPolicy, affinity_key, prompt_prefix

log = structlog.get_logger("hashgrid.gateway")

# Answers that mean "this replica cannot take it now", worth another replica before any byte.
RETRYABLE_STATUS = frozenset({502, 503, 504})


@dataclass
class Exchange:
    """One client request, as metered."""

    request_id: str
    endpoint: str
    client_request_id: str | None = None
    started: float = field(default_factory=time.perf_counter)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    key: KeyEntry | None = None
    model: str = ""
    replica: RouteReplica | None = None
    status: int = 200
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # of the prompt's, served from the engine's prefix cache
    ttft_ms: float | None = None
    ticket: Ticket | None = None  # the request's rate limit charges, when its key has limits
    deployment: str | None = None  # set once counted as demand on it
    stream: bool = False
    relayed_tokens: int = 0  # content chunks relayed to the client: a stream's tokens so far
    prompt_estimate: int = 0  # a stream's prompt tokens from its length, until the engine says
    usage_clamped: bool = False  # the node's token counts were implausible, and were clamped
    holding: tuple[str, str] | None = None  # (holder, deployment): counted as its request

    @property
    def reply_id(self) -> str:
        """The `x-request-id` answered: the client's own when it sent one, else the gateway's."""
        return self.client_request_id or self.request_id

    @property
    def limit_headers(self) -> dict[str, str]:
        """The `x-ratelimit-*` headers every answer to a limited key carries."""
        return self.ticket.headers if self.ticket is not None else {}

    def first_byte(self) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = (time.perf_counter() - self.started) * 1000

    def take_usage(self, usage: object) -> bool:
        """Take the engine's token counts from its `usage`; an implausible one is kept as 0
        (`token_count`) and held against the node that reported it."""
        if not isinstance(usage, dict):
            return False
        self.prompt_tokens, prompt_ok = token_count(usage.get("prompt_tokens"))
        self.completion_tokens, completion_ok = token_count(usage.get("completion_tokens"))
        self.cached_tokens, cached_ok = cached_count(usage, self.prompt_tokens)
        if not (prompt_ok and completion_ok and cached_ok):
            self.usage_clamped = True
            log.warning(
                "node reported implausible token counts; clamped",
                node_id=self.replica.node_id if self.replica else None,
                replica_id=self.replica.replica_id if self.replica else None,
                request_id=self.request_id,
                reported_prompt_tokens=repr(usage.get("prompt_tokens"))[:40],
                reported_completion_tokens=repr(usage.get("completion_tokens"))[:40],
                reported_prompt_tokens_details=repr(usage.get("prompt_tokens_details"))[:80],
            )
        return True


class Proxy:
    def __init__(
        self,
        upstreams: Upstreams,
        watcher: ViewWatcher,
        spool: UsageSpool,
        max_attempts: int,
        policy: RoutingPolicy,
        country: str | None = None,
        limiter: Limiter | None = None,
        access_log: AccessLog | None = None,
        demand: DemandMeter | None = None,
        cold_start_wait_s: float = 120.0,
    ) -> None:
        self._upstreams = upstreams
        self._watcher = watcher
        self._spool = spool
        self._max_attempts = max_attempts
        self.policy = policy
        self._country = country  # clients' country when neither key nor header says
        self._limiter = limiter
        self._access_log = access_log
        self._demand = demand or DemandMeter()
        self._cold_start_wait_s = cold_start_wait_s
        self._in_flight: Counter[str] = Counter()
        # Requests in flight or waiting here of customers holding reserved replicas, by
        # (customer, deployment): while not 0, others' requests stay off their replicas.
        self._holders_busy: Counter[tuple[str, str]] = Counter()
        self._freed = asyncio.Event()  # set (and replaced) when a holder's last request ends
        self.spot_checks: SpotChecker | None = None  # replays some answers (`spotcheck.py`)

    async def handle(self, request: Request, endpoint: str) -> Response:
        # The record's id is always the gateway's own: were it the client's, a client that
        # repeats an `x-request-id` would be billed once for all its requests.
        x = Exchange(
            request_id=new_request_id(),
            endpoint=endpoint,
            client_request_id=client_request_id(request.headers.get("x-request-id")),
        )
        try:
            x.key = await authenticate_current(request.headers.get("authorization"), self._watcher)
            view = self._watcher.view
            country = client_country(
                request.headers.get(CLIENT_COUNTRY_HEADER), x.key, self._country
            )
            body = normalize(endpoint, _parse_body(await request.body()))
            x.model = body["model"]
            routed = view.model_for(x.key.customer_id, x.model)
            if routed is None:
                raise ModelNotFound(x.model)
            if routed.task != TASKS[endpoint]:
                raise BadRequest(
                    f"The model `{x.model}` does not support {endpoint}: it serves "
                    + ("embeddings (/v1/embeddings)." if routed.task == "embed" else "text."),
                    param="model",
                )
            stream = x.stream = body.get("stream") is True
            if stream:  # what a stream cut by a crash is billed for its prompt
                x.prompt_estimate = estimate_tokens(body, 0)[0]
            options = body.get("stream_options")
            wants_usage = isinstance(options, dict) and options.get("include_usage") is True
            if stream:
                # Always ask the engine for usage: it is how every streamed token is metered.
                body["stream_options"] = {**(options or {}), "include_usage": True}
            if self._limiter is not None:  # limits: decided here, settled in _finish
                x.ticket = await self._limiter.admit(
                    x.key, self._watcher.view, routed, body, x.request_id
                )
            x.deployment = routed.deployment
            self._demand.begin(routed.deployment)
            customer = x.key.customer_id
            holders = view.holders.get(routed.name)
            if holders is None:  # no reserved replica (the common case): wait if none is ready
                wait = not routed.replicas and routed.max_replicas > 0
            else:  # or if each is reserved for another customer busy with it
                if customer in holders:
                    x.holding = (customer, routed.deployment)
                    self._holders_busy[x.holding] += 1
                wait = not self._routable(routed, customer)
            if wait:
                routed = await self._first_replica(routed, customer)
            holding = self._holding(routed, customer)
            route = RouteRequest(country, affinity_key(prompt_prefix(body)), holding)
            upstream, data = await self._open(
                routed, endpoint, orjson.dumps(body), route, x, read=not stream
            )
        except OpenAIError as e:
            x.status = e.status
            self._finish(x)
            return e.response(x.reply_id, x.limit_headers)
        except asyncio.CancelledError:  # the gateway is stopping: the request is still metered
            x.status = 499
            self._finish(x)
            raise
        except ClientDisconnect:  # the client left while sending its body: nobody to answer
            x.status = 499
            self._finish(x)
            return Response(status_code=499)
        except Exception:  # a gateway bug: logged with the id, answered in OpenAI's shape
            log.exception("request failed in the gateway", request_id=x.reply_id)
            error = InternalError()
            x.status = error.status
            self._finish(x)
            return error.response(x.reply_id, x.limit_headers)
        if upstream.status >= 400:
            return await self._upstream_error(upstream, x, data)
        assert x.replica is not None
        headers = {"x-request-id": x.reply_id, SITE_HEADER: x.replica.site, **x.limit_headers}
        if stream:
            return StreamingResponse(
                self._relay(upstream, x, strip_usage=not wants_usage),
                status_code=upstream.status,
                media_type="text/event-stream",
                headers={**headers, "cache-control": "no-cache"},
            )
        self._release(upstream, x)
        x.first_byte()
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
            x.take_usage(orjson.loads(data).get("usage"))
        self._finish(x)
        if self.spot_checks is not None and upstream.status < 300:
            self.spot_checks.consider(routed, x.replica, endpoint, body, data, x.request_id)
        return Response(
            data, status_code=upstream.status, media_type="application/json", headers=headers
        )

    async def _first_replica(
        self, routed: RoutedModel, customer_id: str, tried: Set[str] = frozenset()
    ) -> RoutedModel:
        """`routed` as soon as it has a ready replica (one not in `tried`) `customer_id` may
        use: a deployment scaled to zero is woken by the demand report this wait sends at once;
        a replica reserved for another customer is free once that customer's requests here
        end. Raises NoReplica after the wait's bound, ModelNotFound if meanwhile it went or
        `customer_id` may no longer call it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._cold_start_wait_s
        with self._demand.holding(routed.deployment):
            while True:
                current = self._watcher.view.model_for(customer_id, routed.name)
                if current is None:
                    raise ModelNotFound(routed.name)
                if self._routable(current, customer_id, tried):
                    return current
                left = deadline - loop.time()
                # Nothing will come: no replica may be placed, and none is held by another.
                if left <= 0 or (current.max_replicas == 0 and not current.replicas):
                    raise NoReplica(
                        f"The model `{routed.name}` has no ready replica: none became ready "
                        f"within {self._cold_start_wait_s:g} s. Retry later."
                    )
                await self._next_change(left)

    async def _next_change(self, within_s: float) -> None:
        """Return when the next view arrives, a holder's last request here ends (its
        reserved replicas are free for others), or `within_s` passes."""
        waits = [
            asyncio.ensure_future(self._watcher.next_view(within_s)),
            asyncio.ensure_future(self._freed.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    def _holding(self, routed: RoutedModel, customer: str) -> Holding | None:
        """`customer`'s standing among the holders of `routed`'s reserved replicas now; None
        when it has none (the common case: one lookup)."""
        holders = self._watcher.view.holders.get(routed.name)
        if holders is None:
            return None
        busy = self._holders_busy
        deployment = routed.deployment
        return Holding(
            customer, frozenset(h for h in holders if h != customer and busy[(h, deployment)])
        )

    def _routable(self, routed: RoutedModel, customer: str, tried: Set[str] = frozenset()) -> bool:
        """Whether `routed` has a replica not in `tried` that `customer`'s request may use now."""
        holding = self._holding(routed, customer)
        return any(
            r.replica_id not in tried and (holding is None or holding.allows(r.holder))
            for r in routed.replicas
        )

    async def _open(
        self,
        routed: RoutedModel,
        endpoint: str,
        payload: bytes,
        route: RouteRequest,
        x: Exchange,
        *,
        read: bool,
    ) -> tuple[Upstream, bytes]:
        """Connect to a replica the policy chooses, trying others while the client has no byte.

        With `read` (a request not streamed) the body is read here too: the client gets nothing
        until it is whole, so a replica that dies mid-answer is retried like one that refused.

        When every replica the view offered refused the connection or dropped it, they are
        being stopped (moved by a drain, a curtailment or a failover) or are gone, and with a
        single replica there is none other to try: the request waits, as for a cold start, for
        the view to offer a replica it has not tried (its replacement).
        """
        replicas = {r.replica_id: r for r in routed.replicas}
        sites = self._watcher.view.sites
        tried: set[str] = set()
        last_error = ""
        refused = 0  # of the replicas tried (all failed), those that refused or dropped us
        for _ in range(self._max_attempts):
            choice = self.policy.choose(route, candidates(routed, self._in_flight), sites, tried)
            if choice is None and refused == len(tried) > 0 and routed.max_replicas > 0:
                assert x.key is not None  # a replica is chosen for an authenticated request
                routed = await self._first_replica(routed, x.key.customer_id, tried)
                replicas = {r.replica_id: r for r in routed.replicas}
                sites = self._watcher.view.sites
                route = replace(route, holding=self._holding(routed, x.key.customer_id))
                choice = self.policy.choose(
                    route, candidates(routed, self._in_flight), sites, tried
                )
            if choice is None:
                break
            replica = replicas[choice.replica_id]
            tried.add(replica.replica_id)
            self._in_flight[replica.replica_id] += 1
            upstream: Upstream | None = None
            try:
                upstream = await self._upstreams.post(replica, endpoint, payload)
                if upstream.status in RETRYABLE_STATUS:
                    last_error = f"replica answered {upstream.status}"
                else:
                    data = await upstream.read() if read or upstream.status >= 400 else b""
                    self.policy.succeeded(replica.replica_id)
                    x.replica = replica
                    return upstream, data
            except (aiohttp.ClientError, TimeoutError) as e:
                last_error = f"{type(e).__name__}: {e}"
                refused += _refused(e)
            except asyncio.CancelledError:  # the client went away: no verdict on the replica
                self._in_flight[replica.replica_id] -= 1
                if upstream is not None:
                    upstream.close()
                raise
            self._in_flight[replica.replica_id] -= 1
            if upstream is not None:
                upstream.close()
            self.policy.failed(replica.replica_id)
            log.warning(
                "replica failed before the first byte",
                replica=replica.replica_id,
                site=replica.site,
                probe=choice.probe,
                error=last_error,
            )
        if not routed.replicas:
            raise NoReplica(
                f"The model `{routed.name}` has no ready replica right now. Retry later."
            )
        if not tried:  # each one is reserved for another customer's work in flight
            raise NoReplica(
                f"Every replica of `{routed.name}` is reserved for other work right now. Retry "
                "later."
            )
        raise NoReplica(f"No replica of `{routed.name}` could take the request ({last_error}).")

    async def _relay(
        self, upstream: Upstream, x: Exchange, *, strip_usage: bool
    ) -> AsyncIterator[bytes]:
        splitter = EventSplitter()
        complete = False
        done = False  # the engine's `data: [DONE]`, which every OpenAI stream ends with
        if x.key is not None:  # billed for what reached the client if the gateway crashes
            self._spool.track(x.request_id, functools.partial(_progress, x, x.key))
        try:
            async for data in upstream.content.iter_any():
                x.first_byte()
                out = []
                for event in splitter.feed(data):
                    x.relayed_tokens += _content_chunks(event)
                    if b'"usage"' in event:
                        chunk = event_json(event)
                        if chunk is not None and x.take_usage(chunk.get("usage")):
                            if strip_usage and not chunk.get("choices"):
                                continue
                            if strip_usage:
                                chunk.pop("usage", None)
                                event = b"data: " + orjson.dumps(chunk) + b"\n\n"
                    out.append(event)
                if out:
                    done = done or out[-1].startswith(b"data: [DONE]")
                    yield b"".join(out)
            rest = splitter.rest()
            if rest:
                done = done or rest.startswith(b"data: [DONE]")
                yield rest
            complete = True
            if not done:  # the engine closed the stream cleanly but before it ended
                x.status = 502
                error = UpstreamFailed("The replica ended the stream before it was complete.")
                yield b"data: " + orjson.dumps(error.body()) + b"\n\n"
        except aiohttp.ClientError as e:
            x.status = 502
            error = UpstreamFailed(f"The replica failed mid-stream: {e}")
            yield b"data: " + orjson.dumps(error.body()) + b"\n\n"
        finally:
            if not complete and x.status < 400:
                x.status = 499  # the client went away; closing upstream cancels the generation
            if not done:  # cut short: billed for what reached the client, as after a crash
                x.prompt_tokens = x.prompt_tokens or x.prompt_estimate
                x.completion_tokens = max(x.completion_tokens, x.relayed_tokens)
            self._release(upstream, x, abort=not complete)
            self._finish(x)

    async def _upstream_error(self, upstream: Upstream, x: Exchange, data: bytes) -> Response:
        """An engine's refusal or failure, answered in OpenAI's shape without its internals
        (`engine_errors`); what the engine said goes to the log."""
        self._release(upstream, x)
        try:
            parsed: Any = orjson.loads(data)
        except orjson.JSONDecodeError:
            parsed = None
        error = engine_error(upstream.status, data, parsed)
        if upstream.status >= 500:
            log.warning(
                "replica failed the request",
                request_id=x.reply_id,
                replica=x.replica.replica_id if x.replica else None,
                status=upstream.status,
                engine_said=data[:500].decode(errors="replace"),
            )
        x.status = error.status
        self._finish(x)
        response = error.response(x.reply_id, x.limit_headers)
        if x.replica is not None:
            response.headers[SITE_HEADER] = x.replica.site
        return response

    def _release(self, upstream: Upstream, x: Exchange, abort: bool = False) -> None:
        if abort:
            upstream.close()
        else:
            upstream.release()
        if x.replica is not None:
            self._in_flight[x.replica.replica_id] -= 1

    def _finish(self, x: Exchange) -> None:
        duration_ms = (time.perf_counter() - x.started) * 1000
        if x.deployment is not None:  # only a stream's first byte says how soon tokens come
            self._demand.end(x.deployment, x.ttft_ms if x.stream else None)
        if x.holding is not None:
            self._holders_busy[x.holding] -= 1
            if not self._holders_busy[x.holding]:
                del self._holders_busy[x.holding]
                freed, self._freed = self._freed, asyncio.Event()
                freed.set()
        if x.ticket is not None and self._limiter is not None:
            self._limiter.settle(
                x.ticket, x.prompt_tokens, x.completion_tokens, x.status, x.cached_tokens
            )
        replica = x.replica
        if self._access_log is not None:
            self._access_log.request(
                {
                    "request_id": x.request_id,
                    "model": x.model,
                    "replica": replica.replica_id if replica else None,
                    "site": replica.site if replica else None,
                    "status": x.status,
                    "ttft_ms": round(x.ttft_ms, 2) if x.ttft_ms is not None else None,
                    "duration_ms": round(duration_ms, 2),
                    "prompt_tokens": x.prompt_tokens,
                    "completion_tokens": x.completion_tokens,
                }
            )
        if x.key is not None:  # unauthenticated: nobody to bill
            self._spool.append(usage_record(x, x.key, duration_ms))


def _refused(error: BaseException) -> bool:
    """A connection refused, reset or closed by the replica (an engine being stopped), as
    opposed to a timeout (a replica that is there but hangs)."""
    return isinstance(error, aiohttp.ClientConnectionError) and not isinstance(error, TimeoutError)


def usage_record(x: Exchange, key: KeyEntry, duration_ms: float) -> dict[str, Any]:
    """`x`'s `contracts.gateway.UsageRecord`, as a plain dict: no validation on the hot path
    (the server validates each record; a unit test holds the two to the same fields). What the
    client chose is cut to what the server stores; the rest is the gateway's, the view's, or
    clamped in `take_usage`."""
    replica = x.replica
    client_id = x.client_request_id
    return {
        "request_id": x.request_id,
        "client_request_id": clamp_text(client_id, CLIENT_REQUEST_ID_LEN) if client_id else None,
        "key_id": key.key_id,
        "customer_id": key.customer_id,
        "model": clamp_text(x.model, MODEL_LEN),
        "endpoint": x.endpoint,
        "replica_id": replica.replica_id if replica else None,
        "node_id": replica.node_id if replica else None,
        "site": replica.site if replica else None,
        "status_code": x.status,
        "prompt_tokens": x.prompt_tokens,
        "completion_tokens": x.completion_tokens,
        "cached_tokens": x.cached_tokens,
        "ttft_ms": x.ttft_ms,
        "duration_ms": duration_ms,
        "started_at": x.started_at,
        "usage_clamped": x.usage_clamped,
    }


def _progress(x: Exchange, key: KeyEntry) -> dict[str, Any]:
    """The record of stream `x` were the gateway to crash now: the completion tokens that
    reached the client (the engine's count once it came) and the prompt's (estimated from its
    length until the engine counted it), 499."""
    record = usage_record(x, key, (time.perf_counter() - x.started) * 1000)
    record["status_code"] = 499
    record["prompt_tokens"] = x.prompt_tokens or x.prompt_estimate
    record["completion_tokens"] = max(x.completion_tokens, x.relayed_tokens)
    return record


def _content_chunks(event: bytes) -> int:
    """How many choices of a streamed chunk carry text: one token each, as engines stream."""
    if b'"choices"' not in event:
        return 0
    chunk = event_json(event)
    choices = chunk.get("choices") if chunk is not None else None
    if not isinstance(choices, list):
        return 0
    count = 0
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        count += isinstance(text, str) and text != ""
    return count


def _parse_body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise BadRequest(f"The request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


# The task a model must serve for each endpoint.
TASKS = {
    "/v1/chat/completions": "generate",
    "/v1/completions": "generate",
    "/v1/embeddings": "embed",
}
