"""The gateway's Starlette application: `/v1` for customers, `/healthz` for load balancers; and,
on a port of its own, the listener its nodes' tunnels dial (`gateway/tunnel.py`).

Plain Starlette routes, not FastAPI: bodies are parsed once with orjson and passed on, with no
model validation of whole bodies on the hot path.
"""

import asyncio
import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import aiohttp
import orjson
import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hashgrid.common.body_limit import BodyLimit
from hashgrid.common.waiting import cancel_all
from hashgrid.gateway import request_ids, trust
from hashgrid.gateway.access_log import AccessLog
from hashgrid.gateway.auth import authenticate_current
from hashgrid.gateway.demand import DemandMeter, DemandReporter
from hashgrid.gateway.errors import (
    InternalError,
    ModelNotFound,
    OpenAIError,
    RouteNotFound,
    too_large,
)
from hashgrid.gateway.limits import InProcess, Limiter, Store
from hashgrid.gateway.metering import UsageShipper, UsageSpool, adopt_sqlite_spool
from hashgrid.gateway.proxy import Proxy
from hashgrid.gateway.redis_limits import RedisBuckets
from hashgrid.gateway.settings import GatewaySettings
from hashgrid.gateway.spend import SpendLedger
from hashgrid.gateway.spotcheck import SpotChecker, SpotCheckShipper, replay_over
from hashgrid.gateway.steering import load_latency
from hashgrid.gateway.tunnel import TunnelHub
from hashgrid.gateway.upstreams import Upstreams
from hashgrid.gateway.view import ViewWatcher
from hashgrid.ratelimit import LocalBuckets
from hashgrid.routing import DefaultPolicy, PolicyConfig

FIRST_VIEW_WAIT_S = 10.0

log = structlog.get_logger("hashgrid.gateway")


def wall_ms() -> float:
    """The wall clock in ms: gateways sharing buckets in Redis must read the same time."""
    return time.time() * 1000


def create_app(settings: GatewaySettings) -> Starlette:
    holder: dict[str, Proxy | ViewWatcher] = {}
    # One policy for the gateway's life: it holds passive health across requests.
    policy = DefaultPolicy(
        load_latency(settings.rtt_table),
        PolicyConfig(eject_s=settings.eject_s, eject_max_s=settings.eject_max_s),
    )

    tls = trust.prepare(settings)  # the CA it trusts, its certificate (gateway/trust.py)
    control_ssl = tls.control_plane_context()
    tunnel_ssl = tls.tunnel_server_context()
    tunnel_url = trust.tunnel_url(settings, tunnel_ssl is not None)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        # The control plane's calls on a session of their own: verified against its CA alone,
        # while engines and external endpoints keep the default trust.
        control_connector = aiohttp.TCPConnector(
            ssl=control_ssl if control_ssl is not None else True
        )
        async with (
            aiohttp.ClientSession(connector=connector, auto_decompress=False) as session,
            aiohttp.ClientSession(connector=control_connector) as control,
        ):
            spool = UsageSpool(settings.spool_path)
            adopt_sqlite_spool(
                settings.home / "usage-spool.db", spool
            )  # a spool left by an older gateway
            tunnels = TunnelHub(lambda: watcher.view.nodes, lambda: watcher.reachability_changed())
            upstreams = Upstreams(session, tunnels)
            watcher = ViewWatcher(
                control,
                settings.server_url,
                settings.token,
                saved=settings.view_path,
                reachable=upstreams.reachable,
            )
            ledger = SpendLedger(wall_ms)
            shipper = UsageShipper(
                spool,
                control,
                settings.server_url,
                settings.token,
                settings.usage_batch_size,
                settings.usage_flush_s,
                on_shipped=ledger.shipped,
                fsync_s=settings.usage_fsync_s,
            )
            hold_ms = settings.budget_hold_s * 1000
            local = LocalBuckets(wall_ms, hold_ms=hold_ms)
            shared = None
            store: Store = InProcess(local)
            if settings.redis_url:
                shared = RedisBuckets(
                    settings.redis_url,
                    settings.redis_prefix,
                    local,
                    timeout_s=settings.redis_timeout_s,
                    retry_s=settings.redis_retry_s,
                    hold_ms=hold_ms,
                )
                store = shared
            limiter = Limiter(store, ledger, settings.default_completion_tokens)
            demand = DemandMeter()
            access_log = AccessLog() if settings.access_log else None
            holder["watcher"] = watcher
            checker = SpotChecker(
                replay_over(upstreams),
                settings.spot_check_share,
                threshold=settings.spot_check_threshold,
                reachable=upstreams.reachable,
            )
            holder["proxy"] = the_proxy = Proxy(
                upstreams,
                watcher,
                spool,
                settings.max_attempts,
                policy,
                settings.country,
                limiter=limiter,
                access_log=access_log,
                demand=demand,
                cold_start_wait_s=settings.cold_start_wait_s,
            )
            the_proxy.spot_checks = checker
            checks = SpotCheckShipper(
                checker, session, settings.server_url, settings.token, settings.spot_check_flush_s
            )
            reporter = DemandReporter(
                demand,
                control,
                settings.server_url,
                settings.token,
                settings.demand_report_s,
                tunnel_url=tunnel_url,
            )
            # Agents dial the tunnel over TLS whenever the control plane's CA issued this
            # gateway a certificate, and verify it against that CA (gateway/trust.py).
            await tunnels.start(settings.host, settings.tunnel_port, tunnel_ssl)
            tasks = [
                asyncio.create_task(watcher.run(), name="view"),
                asyncio.create_task(shipper.run(), name="usage"),
                asyncio.create_task(shipper.sync_forever(), name="usage-fsync"),
                asyncio.create_task(reporter.run(), name="demand"),
                asyncio.create_task(checks.run(), name="spot-checks"),
                asyncio.create_task(_prune_tunnels(watcher, tunnels), name="tunnels"),
            ]
            if access_log is not None:
                tasks.append(asyncio.create_task(access_log.run(), name="access-log"))
            if shared is not None:
                tasks.append(asyncio.create_task(shared.run(), name="limits"))
            with suppress(TimeoutError):
                await asyncio.wait_for(watcher.synced.wait(), FIRST_VIEW_WAIT_S)
            # What start-up made (modules, settings, the first view) lives as long as the
            # process: out of the collector's sight, its full passes no longer walk it.
            gc.collect()
            gc.freeze()
            try:
                yield
            finally:
                await tunnels.stop()
                await cancel_all(tasks)
                if shared is not None:
                    with suppress(TimeoutError):
                        await asyncio.wait_for(shared.flush(), 1.0)  # the last corrections
                    await shared.close()
                with suppress(aiohttp.ClientError, TimeoutError):
                    # A last try at shipping; what stays is sent on the next start.
                    await asyncio.wait_for(shipper.ship_once(), 2.0)
                with suppress(aiohttp.ClientError, TimeoutError):
                    await asyncio.wait_for(checks.ship_once(), 1.0)  # spot-checks: memory only
                with suppress(OSError):
                    await asyncio.to_thread(spool.sync)
                spool.close()

    def proxy() -> Proxy:
        p = holder["proxy"]
        assert isinstance(p, Proxy)
        return p

    def watcher() -> ViewWatcher:
        w = holder["watcher"]
        assert isinstance(w, ViewWatcher)
        return w

    async def chat_completions(request: Request) -> Response:
        return await proxy().handle(request, "/v1/chat/completions")

    async def completions(request: Request) -> Response:
        return await proxy().handle(request, "/v1/completions")

    async def embeddings(request: Request) -> Response:
        return await proxy().handle(request, "/v1/embeddings")

    async def models(request: Request) -> Response:
        """The models the key may call: the public ones and its customer's private ones."""
        rid = reply_id(request)
        try:
            key = await authenticate_current(request.headers.get("authorization"), watcher())
        except OpenAIError as e:
            return e.response(rid)
        data = [model_object(name) for name in watcher().view.names_for(key.customer_id)]
        return json_response({"object": "list", "data": data}, rid)

    async def model(request: Request) -> Response:
        """OpenAI's retrieve-model: the model when the view routes it and the key may call it,
        else 404 (the same for another customer's private model as for none)."""
        rid = reply_id(request)
        try:
            key = await authenticate_current(request.headers.get("authorization"), watcher())
            name = request.path_params["model"]
            if watcher().view.model_for(key.customer_id, name) is None:
                raise ModelNotFound(name)
        except OpenAIError as e:
            return e.response(rid)
        return json_response(model_object(name), rid)

    async def not_found(request: Request, exc: Exception) -> Response:
        """Unknown routes and methods, in OpenAI's shape like every other `/v1` answer."""
        allowed = isinstance(exc, HTTPException) and exc.status_code == 405
        return RouteNotFound(request.method, request.url.path, allowed).response(reply_id(request))

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("request failed in the gateway", request_id=reply_id(request), exc_info=exc)
        return InternalError().response(reply_id(request))

    async def healthz(request: Request) -> Response:
        """200 once the first view arrived, with each public model's routable replica count
        (private models go unnamed: anyone may ask) and the replicas passive health keeps out
        (seconds of cool-down left)."""
        w = watcher()
        synced = w.synced.is_set()
        models = w.view.models
        body = {
            "status": "ok" if synced else "waiting for the control plane",
            "revision": w.view.revision,
            "ready_replicas": {name: len(models[name].replicas) for name in w.view.public},
            "ejected": {rid: round(s, 1) for rid, s in policy.ejected().items()},
        }
        return Response(
            orjson.dumps(body),
            status_code=200 if synced else 503,
            media_type="application/json",
            headers={"x-request-id": reply_id(request)},
        )

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/models/{model:path}", model, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        exception_handlers={404: not_found, 405: not_found, Exception: server_error},
        lifespan=lifespan,
        middleware=[
            Middleware(BodyLimit, settings.max_body_bytes, too_large(settings.max_body_bytes))
        ],
    )
    app.state.tls = tls
    return app


async def _prune_tunnels(watcher: ViewWatcher, tunnels: TunnelHub) -> None:
    """Close a node's tunnel once the view stops listing its credential (revoked, rotated)."""
    while True:
        await watcher.next_view(60.0)
        tunnels.prune()


def reply_id(request: Request) -> str:
    """The `x-request-id` to answer `request` with (`request_ids`)."""
    return request_ids.reply_id(request.headers.get("x-request-id"))


def model_object(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "hashgrid"}


def json_response(body: object, request_id: str) -> Response:
    return Response(
        orjson.dumps(body), media_type="application/json", headers={"x-request-id": request_id}
    )
