"""The gateway view: every deployed model with its ready replicas and prices, the live API keys
with their limits, the limits of customers that have some, and the spend against budgets.

Engine loads reach gateways with every answer, not through the revision: a load changes with
every heartbeat, and bumping the revision for it would wake every held poll (gateways' and
agents') every beat. Gateways poll with a short wait instead (`gateway/view.py`), and an answer
at a revision already read is the view read then, with the latest loads laid over it: no SQL.
Spend is laid over it the same way, from memory (`server/usage/spend.py`), for the keys and
customers with a budget.
"""

import asyncio
from collections import defaultdict

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.billing.money import FREE
from hashgrid.contracts.gateway import (
    CustomerEntry,
    GatewayView,
    KeyEntry,
    Limits,
    RoutedModel,
    RouteNode,
    RouteReplica,
    RouteSite,
)
from hashgrid.contracts.states import (
    ContractStatus,
    NodeAdmission,
    NodeStatus,
    ReplicaStatus,
    SitePowerState,
)
from hashgrid.server.auth import per_state
from hashgrid.server.catalog.tables import CatalogModel
from hashgrid.server.contracts.tables import ComputeContract
from hashgrid.server.db.base import LimitColumns, utcnow
from hashgrid.server.deployments.loads import ReplicaLoads
from hashgrid.server.deployments.tables import Deployment, Replica
from hashgrid.server.keys.tables import ApiKey
from hashgrid.server.nodes.tables import Node
from hashgrid.server.organizations.service import PLATFORM_OPERATOR
from hashgrid.server.organizations.tables import Organization
from hashgrid.server.prices import service as prices
from hashgrid.server.reliability.tables import ReliabilityScore
from hashgrid.server.sites.tables import Site
from hashgrid.server.state import ServerState
from hashgrid.server.usage.spend import Spend


class Views:
    """The view as read from the database at the latest revision, kept for the next answers.

    Whoever changes what the view shows commits and then bumps the revision, so a view read
    once the revision was R holds every change up to R; until the revision moves, later answers
    reuse it.
    """

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._read: GatewayView | None = None
        self._budgeted: tuple[list[str], list[str]] = ([], [])  # key ids, customer ids
        self._reading = asyncio.Lock()

    async def view(
        self, session: AsyncSession, revision: int, loads: ReplicaLoads, spend: Spend
    ) -> GatewayView:
        """The view at `revision` (or later), with the loads nodes reported last and the spend
        stored so far."""
        read = self._read
        if read is None or read.revision < revision:
            async with self._reading:
                read = self._read
                if read is None or read.revision < revision:
                    read = await view(session, self._state.changes.revision)
                    self._read = read
                    self._budgeted = budgeted(read)
        answer = with_loads(read, loads)
        answer.spend = spend.report(*self._budgeted)
        return answer


def views(request: Request) -> Views:
    """This process's cached gateway view."""
    return per_state(request, "hashgrid_gateway_views", Views)


def budgeted(view: GatewayView) -> tuple[list[str], list[str]]:
    """The ids of keys and of customers that have a budget: the spend gateways need."""
    return (
        [k.key_id for k in view.keys if k.limits.monthly_budget_micros is not None],
        [c.customer_id for c in view.customers if c.limits.monthly_budget_micros is not None],
    )


def with_loads(view: GatewayView, loads: ReplicaLoads) -> GatewayView:
    """`view` with each replica's engine load, where its node reported one that is fresh."""
    models = []
    for model in view.models:
        replicas = []
        for r in model.replicas:
            load = loads.get(r.node_id, r.replica_id)
            if load is not None:
                r = r.model_copy(
                    update={
                        "running": load.running,
                        "waiting": load.waiting,
                        "kv_cache_usage": load.kv_cache_usage,
                    }
                )
            replicas.append(r)
        models.append(model.model_copy(update={"replicas": replicas}))
    return view.model_copy(update={"models": models})


async def view(session: AsyncSession, revision: int) -> GatewayView:
    score = ReliabilityScore
    ready = await session.execute(
        select(Replica, Node, Site, ComputeContract.customer_id, Organization.name, score.score)
        .join(Node, Replica.node_id == Node.id)
        .join(Site, Node.site_id == Site.id)
        .join(Organization, Site.operator_id == Organization.id)
        .outerjoin(score, (score.kind == "node") & (score.subject_id == Node.id))
        # A replica placed for a contract is reserved for its customer while it is in force.
        .outerjoin(
            ComputeContract,
            (Replica.contract_id == ComputeContract.id)
            & (ComputeContract.status == ContractStatus.ACTIVE),
        )
        .where(Replica.status == ReplicaStatus.READY, Node.status == NodeStatus.READY)
        .where(Node.drain_deadline.is_(None))  # a draining node takes no new requests
        .where(Node.admission == NodeAdmission.ADMITTED)  # verified, not quarantined
        .where(Replica.endpoint.is_not(None))
        .order_by(Replica.id)
    )
    by_deployment: dict[str, list[RouteReplica]] = defaultdict(list)
    sites: dict[str, RouteSite] = {}
    for replica, node, site, holder, operator, node_score in ready:
        sites.setdefault(site.name, route_site(site))
        assert replica.endpoint is not None
        by_deployment[replica.deployment_id].append(
            RouteReplica(
                replica_id=replica.id,
                endpoint=replica.endpoint,
                node_id=node.id,
                site=site.name,
                region=site.region,
                holder=holder,
                via="tunnel",
                trusted=operator == PLATFORM_OPERATOR,
                score=node_score,
                capacity_class=node.capacity_class,
            )
        )
    deployments = (
        await session.execute(
            select(Deployment, CatalogModel)
            .outerjoin(CatalogModel, Deployment.model_id == CatalogModel.id)
            .order_by(Deployment.name)
        )
    ).all()
    external = [d for d, m in deployments if m is None]
    for d, site in await _external_sites(session, external):
        if d.condition is None:  # answering the endpoint reconciler's probes
            sites.setdefault(site.name, route_site(site))
            by_deployment[d.id].append(external_replica(d, site))
    now = utcnow()
    book = await prices.book(session, (d.name for d, _ in deployments))

    def prices_now(d: Deployment) -> dict[str, int]:
        """The deployment's list prices in force now (0 where the book has none)."""
        found = book.list_price(d.name, d.tier, now) or FREE
        return {
            "price_prompt": found.prompt,
            "price_cached": found.cached,
            "price_completion": found.completion,
        }

    keys = (await session.scalars(select(ApiKey).where(ApiKey.revoked_at.is_(None)))).all()
    nodes = (await session.execute(select(Node.id, Node.credential_hash).order_by(Node.id))).all()
    limited = (
        await session.scalars(
            select(Organization).where(
                Organization.rpm_limit.is_not(None)
                | Organization.tpm_limit.is_not(None)
                | Organization.monthly_budget_micros.is_not(None)
            )
        )
    ).all()
    return GatewayView(
        revision=revision,
        models=[
            RoutedModel(
                name=d.name,
                deployment=d.id,
                replicas=by_deployment[d.id],
                task=m.task,
                max_replicas=d.max_replicas,
                context_length=m.context_length,
                **prices_now(d),
                customer_id=d.customer_id,
            )
            if m is not None
            # External: no catalog prices; max_replicas 0 since nothing will place another
            # replica, so a request for a silent endpoint fails at once instead of waiting.
            else RoutedModel(
                name=d.name,
                deployment=d.id,
                replicas=by_deployment[d.id],
                task=d.task or "generate",
                max_replicas=0,
                customer_id=d.customer_id,
                **prices_now(d),
            )
            for d, m in deployments
        ],
        keys=[
            KeyEntry(
                key_id=k.id,
                key_hash=k.key_hash,
                customer_id=k.customer_id,
                limits=feed_limits(k),
            )
            for k in keys
        ],
        customers=[CustomerEntry(customer_id=o.id, limits=feed_limits(o)) for o in limited],
        sites=sorted(sites.values(), key=lambda s: s.name),
        nodes=[RouteNode(node_id=n, credential_hash=h) for n, h in nodes],
    )


def feed_limits(row: LimitColumns) -> Limits:
    """A key's or organization's limits as gateways count them (the budget in micro-dollars)."""
    budget = row.monthly_budget_micros
    return Limits(rpm=row.rpm_limit, tpm=row.tpm_limit, monthly_budget_micros=budget)


def route_site(site: Site) -> RouteSite:
    return RouteSite(
        name=site.name,
        region=site.region,
        country=site.country,
        power_state=SitePowerState(site.power_state),
    )


# A node id no node has (ids are hex): what usage records and loads show for an endpoint that
# runs outside hashgrid.
EXTERNAL_NODE = "external"


def external_replica(deployment: Deployment, site: Site) -> RouteReplica:
    """An external deployment's endpoint as its one replica; its id is the deployment's (usage
    records keep 32 characters of a replica id)."""
    assert deployment.endpoint is not None
    return RouteReplica(
        replica_id=deployment.id,
        endpoint=deployment.endpoint,
        node_id=EXTERNAL_NODE,
        site=site.name,
        region=site.region,
    )


async def _external_sites(
    session: AsyncSession, external: list[Deployment]
) -> list[tuple[Deployment, Site]]:
    if not external:
        return []
    ids = {d.site_id for d in external}
    found = {s.id: s for s in await session.scalars(select(Site).where(Site.id.in_(ids)))}
    return [(d, site) for d in external if (site := found.get(d.site_id or ""))]
