"""Deployments: what should run. Replicas: what runs, as the placement reconciler decided.

A deployment is public (`customer_id` None: in the platform's catalog) or private to one
customer organization. A caller that sees one organization (`scope`) finds the public ones and
its own private ones; another customer's private deployment is as absent as a missing one.
"""

from collections.abc import Sequence

from sqlalchemy import ColumnElement, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.contracts.api.deployments import (
    DeploymentChange,
    DeploymentCreate,
    DeploymentOut,
    EventOut,
    ReplicaOut,
    Tier,
    resolve_bounds,
)
from hashgrid.contracts.api.organizations import OrgKind
from hashgrid.contracts.engines import ENGINES, accepts
from hashgrid.contracts.states import (
    ACTIVE_REPLICA,
    LIVE_CONTRACT,
    ReplicaStatus,
    replica_can_move,
)
from hashgrid.server import pages
from hashgrid.server.catalog import service as catalog
from hashgrid.server.catalog.tables import CatalogModel
from hashgrid.server.contracts.tables import ComputeContract
from hashgrid.server.db.base import utcnow
from hashgrid.server.deployments import events
from hashgrid.server.deployments.loads import ReplicaLoads
from hashgrid.server.deployments.sizing import engine_of
from hashgrid.server.deployments.tables import Deployment, Replica
from hashgrid.server.errors import Conflict, Invalid, NotFound
from hashgrid.server.organizations import service as organizations
from hashgrid.server.organizations.tables import Organization
from hashgrid.server.sites.tables import Site

RECENT_FAILURES = 3
# Fields of a change that may be left out but not set to null (ttft_target_ms, gpu_type and
# engine may: null is "none" or "the model's").
NOT_NULL = frozenset({"target_load", "idle_s", "tier", "replicas", "model", "tensor_parallel_size"})
# Statuses whose reason says why the replica was stopped.
STOP_REASONED = frozenset({ReplicaStatus.STOPPING, ReplicaStatus.STOPPED})
# An external deployment's condition until the endpoint reconciler has heard it answer.
UNPROBED = "endpoint not probed yet"


async def create(session: AsyncSession, body: DeploymentCreate) -> Deployment:
    """A deployment of a catalog model (placed on nodes), or of an endpoint run elsewhere.
    Raises Invalid, NotFound or Conflict (and stores nothing) on bad input."""
    if body.endpoint is not None:
        return await _create_external(session, body, body.endpoint)
    if body.model is None:
        raise Invalid(
            "give model (a catalog model, placed on nodes) or endpoint (an OpenAI-compatible "
            "server run outside hashgrid)"
        )
    if body.site is not None or body.task is not None:
        raise Invalid(
            "site and task go with endpoint: a catalog model's replicas are placed by the "
            "scheduler (regions narrow where) and serve the model's task"
        )
    model = await catalog.get(session, body.model)
    _check_engine(body.engine or model.engine, model)
    name = body.name or model.name
    await _name_free(session, name)
    customer_id = await _customer_id(session, body.customer)
    try:
        replicas, low, high = body.bounds()
    except ValueError as e:
        raise Invalid(str(e)) from None
    deployment = Deployment(
        name=name,
        model_id=model.id,
        replicas=replicas,
        min_replicas=low,
        max_replicas=high,
        target_load=body.target_load,
        ttft_target_ms=body.ttft_target_ms,
        idle_s=body.idle_s,
        regions=sorted(set(body.regions)),
        tier=body.tier,
        engine=body.engine,
        tensor_parallel_size=body.tensor_parallel_size,
        gpu_type=body.gpu_type,
        customer_id=customer_id,
    )
    session.add(deployment)
    await session.commit()
    return deployment


async def _customer_id(session: AsyncSession, customer: str | None) -> str | None:
    """The id of the customer organization a deployment is private to; None: public. Raises
    NotFound for no such organization, Invalid for one that is not a customer."""
    if customer is None:
        return None
    return (await organizations.get(session, customer, OrgKind.CUSTOMER)).id


async def _name_free(session: AsyncSession, name: str) -> None:
    if await session.scalar(select(Deployment).where(Deployment.name == name)):
        raise Conflict(f"deployment {name!r} exists")


async def _create_external(
    session: AsyncSession, body: DeploymentCreate, endpoint: str
) -> Deployment:
    """An endpoint as a deployment of one replica that nothing places, scales or rolls."""
    if body.model is not None:
        raise Invalid(
            "give model or endpoint, not both: an endpoint serves what it serves, under name"
        )
    if body.name is None:
        raise Invalid("an endpoint needs name: what clients put in `model`")
    placing = [
        field
        for field, given in (
            ("replicas", body.replicas not in (None, 1)),
            ("min_replicas", body.min_replicas not in (None, 1)),
            ("max_replicas", body.max_replicas not in (None, 1)),
            ("ttft_target_ms", body.ttft_target_ms is not None),
            ("regions", bool(body.regions)),
            ("engine", body.engine is not None),
            ("tensor_parallel_size", body.tensor_parallel_size != 1),
            ("gpu_type", body.gpu_type is not None),
        )
        if given
    ]
    if placing:
        raise Invalid(
            f"{', '.join(placing)} cannot apply to an endpoint: it is one replica run outside "
            "hashgrid, never placed or scaled (its site sets where it is)"
        )
    site = await _external_site(session, body.site)
    await _name_free(session, body.name)
    customer_id = await _customer_id(session, body.customer)
    deployment = Deployment(
        name=body.name,
        model_id=None,
        endpoint=endpoint,
        site_id=site.id,
        task=body.task or "generate",
        replicas=1,
        min_replicas=1,
        max_replicas=1,
        target_load=body.target_load,
        idle_s=body.idle_s,
        regions=[],
        tier=body.tier,
        condition=UNPROBED,
        customer_id=customer_id,
    )
    session.add(deployment)
    await session.flush()
    events.record(session, deployment.id, f"external endpoint {endpoint} at site {site.name}")
    await session.commit()
    return deployment


async def _external_site(session: AsyncSession, name: str | None) -> Site:
    """The site `name`, or with none given the only site there is."""
    if name is not None:
        site = await session.scalar(select(Site).where(Site.name == name))
        if site is None:
            raise Invalid(f"no site {name!r}")
        return site
    sites = (await session.scalars(select(Site).limit(2))).all()
    if len(sites) != 1:
        raise Invalid(
            "an endpoint needs site: the site it is routed as part of (there are "
            f"{'several' if sites else 'none yet'}; create one with `hashgrid sites create`)"
        )
    return sites[0]


def visible_to(scope: str | None) -> ColumnElement[bool]:
    """The deployments a caller seeing organization `scope` finds: the public ones and its own
    private ones; `scope` None: every deployment."""
    if scope is None:
        return true()
    return Deployment.customer_id.is_(None) | (Deployment.customer_id == scope)


async def get(session: AsyncSession, name: str, scope: str | None = None) -> Deployment:
    """The deployment called `name`, if a caller seeing `scope` finds it (None: any)."""
    deployment = await session.scalar(
        select(Deployment).where(Deployment.name == name, visible_to(scope))
    )
    if deployment is None:
        raise NotFound(f"no deployment {name!r}")
    return deployment


DEPLOYMENT_ORDER = pages.Order(pages.By(Deployment.name))


async def list_visible(
    session: AsyncSession,
    scope: str | None,
    cursor: str | None,
    limit: int,
    model: str | None = None,
    customer: str | None = None,
) -> pages.Items[Deployment]:
    """A page of the deployments a caller seeing `scope` finds, by name: of catalog `model` and
    private to the organization called `customer`, where given."""
    query = select(Deployment).where(visible_to(scope))
    if model is not None:
        query = query.where(
            Deployment.model_id.in_(select(CatalogModel.id).where(CatalogModel.name == model))
        )
    if customer is not None:
        query = query.where(
            Deployment.customer_id.in_(select(Organization.id).where(Organization.name == customer))
        )
    return await pages.scalars(session, query, DEPLOYMENT_ORDER, cursor, limit)


async def change(session: AsyncSession, deployment: Deployment, body: DeploymentChange) -> None:
    """Apply `body`: a new size or scaling targets at once; a change of what replicas run as a
    new generation that placement rolls out; who may call it (`customer`) at once. Raises
    Invalid or NotFound (and changes nothing) on bad input, and for an external deployment
    anything but `customer`: it has no replicas to scale or roll."""
    given = body.model_fields_set
    if deployment.endpoint is not None and given - {"customer"}:
        raise Invalid(
            f"deployment {deployment.name!r} is an external endpoint ({deployment.endpoint}), "
            "one replica run outside hashgrid: there is nothing to scale or roll out; only "
            "customer changes, for the rest delete it and deploy again"
        )
    current = (deployment.replicas, deployment.min_replicas, deployment.max_replicas)
    try:
        replicas, low, high = resolve_bounds(
            body.replicas, body.min_replicas, body.max_replicas, current
        )
    except ValueError as e:
        raise Invalid(str(e)) from None
    for field in given & NOT_NULL:
        if getattr(body, field) is None:
            raise Invalid(f"{field} cannot be null")
    if "customer" in given:
        await _change_customer(session, deployment, body.customer)
    rolled = await _spec_changes(session, deployment, body)
    for field in given & {"target_load", "ttft_target_ms", "idle_s", "tier"}:
        setattr(deployment, field, getattr(body, field))
    if (replicas, low, high) != current:
        events.record(session, deployment.id, f"resized to {_size_text(replicas, low, high)}")
    deployment.replicas, deployment.min_replicas, deployment.max_replicas = replicas, low, high
    if rolled:
        deployment.generation += 1
        events.record(
            session,
            deployment.id,
            f"rolling out generation {deployment.generation}: {'; '.join(rolled)}",
        )
    await session.commit()


async def _change_customer(
    session: AsyncSession, deployment: Deployment, customer: str | None
) -> None:
    """Make `deployment` private to the organization called `customer` (None: public). Raises
    Conflict while another customer's compute contract reserves replicas of it: its keys
    would lose the model they hold replicas of."""
    customer_id = await _customer_id(session, customer)
    if customer_id is not None:
        held = await _live_contract(session, deployment, ComputeContract.customer_id != customer_id)
        if held is not None:
            raise Conflict(
                f"customer: compute contract {held} of another customer reserves replicas of "
                f"{deployment.name!r}; cancel it first"
            )
    if customer_id != deployment.customer_id:
        deployment.customer_id = customer_id
        events.record(
            session, deployment.id, f"private to {customer}" if customer else "made public"
        )


async def _spec_changes(
    session: AsyncSession, deployment: Deployment, body: DeploymentChange
) -> list[str]:
    """Set what replicas run from `body` on `deployment`; each change, in words."""
    given = body.model_fields_set
    changes = []
    if body.model is not None:
        model = await catalog.get(session, body.model)
        if model.id != deployment.model_id:
            old = await session.get(CatalogModel, deployment.model_id)
            changes.append(f"model {old.name if old else '?'} -> {model.name}")
            deployment.model_id = model.id
    for field in ("engine", "tensor_parallel_size", "gpu_type"):
        if field in given and getattr(body, field) != getattr(deployment, field):
            changes.append(f"{field} {getattr(deployment, field)} -> {getattr(body, field)}")
            setattr(deployment, field, getattr(body, field))
    if changes:
        serving = await session.get(CatalogModel, deployment.model_id)
        if serving is not None:
            _check_engine(engine_of(deployment, serving), serving)
    if body.regions is not None and sorted(set(body.regions)) != deployment.regions:
        regions = sorted(set(body.regions))
        changes.append(f"regions {','.join(deployment.regions) or 'any'} -> {','.join(regions)}")
        deployment.regions = regions
    return changes


def _check_engine(engine: str, model: CatalogModel) -> None:
    """Raise Invalid unless `engine` serves `model`'s format."""
    if not accepts(engine, model.format):
        facts = ENGINES.get(engine)
        served = " and ".join(facts.formats) if facts is not None else "nothing"
        raise Invalid(
            f"engine {engine} cannot serve {model.name!r}, a {model.format} model: {engine} "
            f"serves {served}"
        )


def _size_text(replicas: int, low: int, high: int) -> str:
    if low == high:
        return f"{replicas} replica(s)"
    return f"{replicas} replica(s), autoscaled within {low}..{high}"


async def delete(session: AsyncSession, deployment: Deployment) -> None:
    """Remove a deployment; its agents stop its replicas on their next poll. Raises Conflict
    while a compute contract reserves replicas of it (cancel the contract first)."""
    held = await _live_contract(session, deployment)
    if held is not None:
        raise Conflict(
            f"deployment {deployment.name!r} has compute contract {held} pending or active: "
            "cancel it first"
        )
    await session.execute(
        update(Replica)
        .where(Replica.deployment_id == deployment.id, Replica.status.in_(ACTIVE_REPLICA))
        .values(status=ReplicaStatus.STOPPING, reason="deployment deleted", updated_at=utcnow())
    )
    await session.delete(deployment)
    await session.commit()


async def _live_contract(
    session: AsyncSession, deployment: Deployment, *where: ColumnElement[bool]
) -> str | None:
    """The id of a pending or active compute contract on `deployment` (and `where`), if any."""
    return await session.scalar(
        select(ComputeContract.id).where(
            ComputeContract.deployment_id == deployment.id,
            ComputeContract.status.in_(LIVE_CONTRACT),
            *where,
        )
    )


async def replicas_of(session: AsyncSession, deployment_id: str) -> Sequence[Replica]:
    return (
        await session.scalars(
            select(Replica)
            .where(Replica.deployment_id == deployment_id)
            .order_by(Replica.created_at, Replica.id)
        )
    ).all()


REPLICA_ORDER = pages.Order(pages.By(Replica.created_at, descending=True), pages.By(Replica.id))


async def list_replicas(
    session: AsyncSession,
    deployment_id: str | None,
    node_id: str | None,
    status: ReplicaStatus | None,
    cursor: str | None,
    limit: int,
) -> pages.Items[Replica]:
    """A page of the replicas, newest first, of a deployment, on a node, in a status if given."""
    query = select(Replica)
    if deployment_id is not None:
        query = query.where(Replica.deployment_id == deployment_id)
    if node_id is not None:
        query = query.where(Replica.node_id == node_id)
    if status is not None:
        query = query.where(Replica.status == status)
    return await pages.scalars(session, query, REPLICA_ORDER, cursor, limit)


async def report(
    session: AsyncSession,
    replica: Replica,
    status: ReplicaStatus,
    endpoint: str | None,
    reason: str | None,
) -> None:
    """Apply an agent's report on `replica`, if the transition is allowed."""
    current = ReplicaStatus(replica.status)
    if not replica_can_move(current, status):
        raise Conflict(f"replica {replica.id} is {current}; it cannot become {status}")
    # An agent reports a stop without a reason: the one it was stopped for stays.
    keeps_reason = status == ReplicaStatus.STOPPED and current in STOP_REASONED
    replica.status = status
    replica.endpoint = endpoint or replica.endpoint
    replica.reason = reason if reason is not None or not keeps_reason else replica.reason
    replica.updated_at = utcnow()
    if status != current and status in (ReplicaStatus.READY, ReplicaStatus.FAILED):
        because = f": {reason}" if status == ReplicaStatus.FAILED and reason else ""
        events.record(
            session,
            replica.deployment_id,
            f"replica {replica.id[:8]} {status} on node {replica.node_id[:8]}{because}",
        )
    await session.commit()


def replica_out(replica: Replica, loads: ReplicaLoads | None = None) -> ReplicaOut:
    """A replica, with the load its node last reported for it when `loads` has one."""
    out = ReplicaOut.model_validate(replica)
    if loads is not None:
        out.load = loads.get(replica.node_id, replica.id)
    return out


async def to_out(
    session: AsyncSession, deployment: Deployment, loads: ReplicaLoads | None = None
) -> DeploymentOut:
    if deployment.model_id is None:
        return await _external_out(session, deployment)
    model = await session.get(CatalogModel, deployment.model_id)
    assert model is not None
    every = await replicas_of(session, deployment.id)
    replicas = [r for r in every if r.status in ACTIVE_REPLICA]
    failures = sorted(
        (r for r in every if r.status == ReplicaStatus.FAILED),
        key=lambda r: r.updated_at,
        reverse=True,
    )[:RECENT_FAILURES]
    return DeploymentOut(
        id=deployment.id,
        name=deployment.name,
        model=model.name,
        replicas=deployment.replicas,
        generation=deployment.generation,
        min_replicas=deployment.min_replicas,
        max_replicas=deployment.max_replicas,
        target_load=deployment.target_load,
        ttft_target_ms=deployment.ttft_target_ms,
        idle_s=deployment.idle_s,
        ready_replicas=sum(r.status == ReplicaStatus.READY for r in replicas),
        regions=deployment.regions,
        tier=Tier(deployment.tier),
        engine=engine_of(deployment, model),
        tensor_parallel_size=deployment.tensor_parallel_size,
        gpu_type=deployment.gpu_type,
        condition=deployment.condition,
        customer=await _customer_name(session, deployment.customer_id),
        created_at=deployment.created_at,
        replica_list=[replica_out(r, loads) for r in replicas],
        recent_failures=[ReplicaOut.model_validate(r) for r in failures],
        events=[EventOut.model_validate(e) for e in await events.recent(session, deployment.id)],
    )


def as_customers_see_it(out: DeploymentOut) -> DeploymentOut:
    """What a customer is shown of a deployment: what it serves and how ready it is, not the
    replicas, nodes, sites and endpoints that serve it (operators' infrastructure, ids of other
    organizations) nor the events that name them."""
    return out.model_copy(
        update={
            "replica_list": [],
            "recent_failures": [],
            "events": [],
            "endpoint": None,
            "site": None,
        }
    )


async def _external_out(session: AsyncSession, deployment: Deployment) -> DeploymentOut:
    """An external deployment: its endpoint is its one replica, ready while it answers probes."""
    site = await session.get(Site, deployment.site_id)
    return DeploymentOut(
        id=deployment.id,
        name=deployment.name,
        model=None,
        replicas=1,
        ready_replicas=int(deployment.condition is None),
        generation=deployment.generation,
        min_replicas=1,
        max_replicas=1,
        target_load=deployment.target_load,
        ttft_target_ms=None,
        idle_s=deployment.idle_s,
        regions=deployment.regions,
        tier=Tier(deployment.tier),
        engine=None,
        tensor_parallel_size=1,
        gpu_type=None,
        condition=deployment.condition,
        endpoint=deployment.endpoint,
        site=site.name if site else None,
        task=deployment.task or "generate",
        customer=await _customer_name(session, deployment.customer_id),
        created_at=deployment.created_at,
        replica_list=[],
        recent_failures=[],
        events=[EventOut.model_validate(e) for e in await events.recent(session, deployment.id)],
    )


async def _customer_name(session: AsyncSession, customer_id: str | None) -> str | None:
    if customer_id is None:
        return None
    org = await session.get(Organization, customer_id)
    return org.name if org else None
