"""The control plane's FastAPI application."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import Depends, FastAPI

import hashgrid
from hashgrid.common.body_limit import BodyLimit
from hashgrid.common.waiting import cancel_all
from hashgrid.server.access.router import router as access_router
from hashgrid.server.accounts.router import router as accounts_router
from hashgrid.server.agents.router import router as agents_router
from hashgrid.server.audit.router import router as audit_router
from hashgrid.server.billing.router import router as billing_router
from hashgrid.server.bootstrap import bootstrap
from hashgrid.server.catalog.router import router as catalog_router
from hashgrid.server.changes import Changes
from hashgrid.server.contracts.hours import ContractHours
from hashgrid.server.contracts.invoicing import contract_lines
from hashgrid.server.contracts.router import router as contracts_router
from hashgrid.server.db.engine import make_engine, make_sessionmaker
from hashgrid.server.db.migrate import upgrade
from hashgrid.server.deployments.demand import GatewayDemand
from hashgrid.server.deployments.loads import STALE_AFTER_BEATS, ReplicaLoads
from hashgrid.server.deployments.router import replicas_router
from hashgrid.server.deployments.router import router as deployments_router
from hashgrid.server.errors import install_error_handlers, problem
from hashgrid.server.feed.router import router as feed_router
from hashgrid.server.keys.router import router as keys_router
from hashgrid.server.metrics import ServerMetrics
from hashgrid.server.nodes.liveness import HearingMiddleware, Liveness
from hashgrid.server.nodes.router import router as nodes_router
from hashgrid.server.organizations.router import router as organizations_router
from hashgrid.server.pki import service as pki
from hashgrid.server.pki.router import router as pki_router
from hashgrid.server.policy import authorize, check_every_route_has_a_rule
from hashgrid.server.power.router import router as power_router
from hashgrid.server.power.service import curtailment_leads
from hashgrid.server.prices.router import router as prices_router
from hashgrid.server.reconcile.autoscale import AutoscaleReconciler
from hashgrid.server.reconcile.endpoints import EndpointReconciler
from hashgrid.server.reconcile.invoicing import InvoiceReconciler
from hashgrid.server.reconcile.liveness import LivenessReconciler
from hashgrid.server.reconcile.placement import PlacementReconciler
from hashgrid.server.reconcile.power import PowerReconciler
from hashgrid.server.reconcile.runner import start_all
from hashgrid.server.reconcile.scores import ScoreReconciler
from hashgrid.server.settings import ServerSettings
from hashgrid.server.sites.router import router as sites_router
from hashgrid.server.state import ServerState
from hashgrid.server.usage.closed_days import ClosedDays
from hashgrid.server.usage.router import router as usage_router
from hashgrid.server.usage.spend import Spend

ROUTERS = (
    accounts_router,
    organizations_router,
    audit_router,
    access_router,
    sites_router,
    power_router,
    nodes_router,
    catalog_router,
    prices_router,
    deployments_router,
    replicas_router,
    keys_router,
    usage_router,
    contracts_router,
    billing_router,
    agents_router,
    feed_router,
    pki_router,
)


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """A control plane for `settings` (default: read from the environment)."""
    settings = settings or ServerSettings()
    liveness = Liveness(settings.node_ttl_s)
    metrics = ServerMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.resolved_database_url())
        metrics.count_writes(engine)
        await upgrade(engine)
        sessions = make_sessionmaker(engine)
        await bootstrap(sessions, settings)
        spend = Spend()
        async with sessions() as session:
            await spend.load(session)
        state = ServerState(
            settings=settings,
            engine=engine,
            sessions=sessions,
            changes=Changes(),
            liveness=liveness,
            spend=spend,
            summaries=ClosedDays(),
            loads=ReplicaLoads(STALE_AFTER_BEATS * settings.heartbeat_interval_s),
            demand=GatewayDemand(),
            # Where invoice lines besides usage come from (billing/providers.py).
            line_providers=(contract_lines,),
        )
        app.state.hashgrid = state
        tasks = start_all(
            [
                (
                    PlacementReconciler(
                        sessions,
                        state.changes,
                        settings.replica_retry_after_s,
                        contract_lead_s=settings.contract_lead_s,
                    ),
                    settings.reconcile_interval_s,
                ),
                (
                    LivenessReconciler(sessions, state.changes, state.liveness),
                    min(1.0, settings.node_ttl_s / 4),
                ),
                (AutoscaleReconciler(state), settings.autoscale_interval_s),
                (
                    PowerReconciler(
                        sessions,
                        state.changes,
                        curtailment_leads(settings),
                        timedelta(seconds=settings.node_standby_after_s),
                    ),
                    settings.power_interval_s,
                ),
                (
                    EndpointReconciler(sessions, state.changes, settings.endpoint_probe_interval_s),
                    settings.endpoint_probe_interval_s,
                ),
                (
                    ScoreReconciler(
                        sessions,
                        state.changes,
                        settings.score_interval_s,
                        settings.score_window_s,
                    ),
                    settings.score_interval_s,
                ),
                (
                    ContractHours(
                        sessions, state.changes, timedelta(seconds=settings.contract_lead_s)
                    ),
                    settings.contract_sample_s,
                ),
            ],
            state.changes,
        )
        if settings.invoice_grace_s is not None:
            invoicing = InvoiceReconciler(sessions, state.line_providers, settings.invoice_grace_s)
            tasks += start_all([(invoicing, settings.invoice_interval_s)], state.changes)
        try:
            yield
        finally:
            await cancel_all(tasks)
            await engine.dispose()

    app = FastAPI(
        title="hashgrid control plane",
        version=hashgrid.__version__,
        description="Sites, nodes, models, deployments, keys and usage; the agent protocol; "
        "the gateway feed. Errors are problem details (RFC 9457).",
        lifespan=lifespan,
        # Every route's caller is checked against server/policy.py before its handler runs.
        dependencies=[Depends(authorize)],
    )
    app.state.ca = pki.authority(settings)  # None without TLS
    install_error_handlers(app)
    too_large = f"The request body is larger than {settings.max_body_bytes} bytes, the limit."
    app.add_middleware(
        BodyLimit, settings.max_body_bytes, lambda _: problem(413, "Request too large", too_large)
    )
    app.add_middleware(HearingMiddleware, liveness=liveness)
    for router in ROUTERS:
        app.include_router(router)
    metrics.install(app)  # GET /metrics, no auth (see its docstring)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    check_every_route_has_a_rule(app)

    return app
