"""Deployments: what should run. Replicas: what runs, as the placement reconciler decided."""

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.contracts.states import ACTIVE_REPLICA, ReplicaStatus, replica_can_move
from hashgrid.server import pages
from hashgrid.server.catalog import service as catalog
from hashgrid.server.catalog.tables import CatalogModel
from hashgrid.server.db.base import utcnow
from hashgrid.server.deployments import events
from hashgrid.server.deployments.loads import ReplicaLoads
from hashgrid.server.deployments.schemas import (
    DeploymentChange,
    DeploymentCreate,
    DeploymentOut,
    EventOut,
    ReplicaOut,
    Tier,
    resolve_bounds,
)
from hashgrid.server.deployments.sizing import engine_of
from hashgrid.server.deployments.tables import Deployment, Replica
from hashgrid.server.errors import Conflict, Invalid, NotFound
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
    name = body.name or model.name
    await _name_free(session, name)
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
    )
    session.add(deployment)
    await session.commit()
    return deployment


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


async def get(session: AsyncSession, name: str) -> Deployment:
    deployment = await session.scalar(select(Deployment).where(Deployment.name == name))
    if deployment is None:
        raise NotFound(f"no deployment {name!r}")
    return deployment


async def list_all(session: AsyncSession) -> Sequence[Deployment]:
    return (await session.scalars(select(Deployment).order_by(Deployment.name))).all()


async def change(session: AsyncSession, deployment: Deployment, body: DeploymentChange) -> None:
    """Apply `body`: a new size or scaling targets at once; a change of what replicas run as a
    new generation that placement rolls out. Raises Invalid (and changes nothing) on bad input,
    and for an external deployment, which has no replicas to scale or roll."""
    if deployment.endpoint is not None:
        raise Invalid(
            f"deployment {deployment.name!r} is an external endpoint ({deployment.endpoint}), "
            "one replica run outside hashgrid: there is nothing to scale or roll out; delete it "
            "and deploy again to change it"
        )
    current = (deployment.replicas, deployment.min_replicas, deployment.max_replicas)
    try:
        replicas, low, high = resolve_bounds(
            body.replicas, body.min_replicas, body.max_replicas, current
        )
    except ValueError as e:
        raise Invalid(str(e)) from None
    given = body.model_fields_set
    for field in given & NOT_NULL:
        if getattr(body, field) is None:
            raise Invalid(f"{field} cannot be null")
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
    if body.regions is not None and sorted(set(body.regions)) != deployment.regions:
        regions = sorted(set(body.regions))
        changes.append(f"regions {','.join(deployment.regions) or 'any'} -> {','.join(regions)}")
        deployment.regions = regions
    return changes


def _size_text(replicas: int, low: int, high: int) -> str:
    if low == high:
        return f"{replicas} replica(s)"
    return f"{replicas} replica(s), autoscaled within {low}..{high}"


async def delete(session: AsyncSession, deployment: Deployment) -> None:
    """Remove a deployment; its agents stop its replicas on their next poll."""
    await session.execute(
        update(Replica)
        .where(Replica.deployment_id == deployment.id, Replica.status.in_(ACTIVE_REPLICA))
        .values(status=ReplicaStatus.STOPPING, reason="deployment deleted", updated_at=utcnow())
    )
    await session.delete(deployment)
    await session.commit()


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
        created_at=deployment.created_at,
        replica_list=[replica_out(r, loads) for r in replicas],
        recent_failures=[ReplicaOut.model_validate(r) for r in failures],
        events=[EventOut.model_validate(e) for e in await events.recent(session, deployment.id)],
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
        created_at=deployment.created_at,
        replica_list=[],
        recent_failures=[],
        events=[EventOut.model_validate(e) for e in await events.recent(session, deployment.id)],
    )
