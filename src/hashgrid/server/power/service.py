"""Site power: the stored model, curtailments obeyed tier by tier (at once or scheduled for
their deadline), plans and their history."""

from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.contracts.agent import MinerOrder, NodePowerOrder
from hashgrid.contracts.api.power import (
    CurtailmentCreate,
    CurtailmentOut,
    HistoryOut,
    IntervalOut,
    PlanOut,
    PowerModel,
    SitePowerOut,
)
from hashgrid.contracts.states import (
    ACTIVE_REPLICA,
    LIVE_CONTRACT,
    NodePower,
    NodeStatus,
    SitePowerState,
)
from hashgrid.scheduler import Tier
from hashgrid.server.changes import Changes
from hashgrid.server.contracts.tables import ComputeContract
from hashgrid.server.db.base import utcnow
from hashgrid.server.deployments.tables import Deployment, Replica
from hashgrid.server.errors import Conflict, Invalid
from hashgrid.server.nodes.tables import Node
from hashgrid.server.power.gpu_power import busy_power
from hashgrid.server.power.market import HISTORY_H, HOUR, check_sources, interval_of, prices_at
from hashgrid.server.power.planning import (
    FORECAST_WEEKS,
    NodeWork,
    Planned,
    mining_value,
    node_kw,
    plan_intervals,
)
from hashgrid.server.power.shedding import Leads, Load, miner_orders, shed
from hashgrid.server.power.tables import Curtailment, PlannedInterval, SitePower
from hashgrid.server.settings import ServerSettings
from hashgrid.server.sites import service as sites
from hashgrid.server.sites.tables import Site

MAX_PLAN_HOURS = 24 * 14
CURTAIL_ATTEMPTS = 5


async def stored_model(session: AsyncSession, site: Site) -> PowerModel | None:
    """The site's power model; Conflict for one stored before its bounds that it now breaks."""
    row = await session.get(SitePower, site.id)
    if row is None:
        return None
    try:
        return PowerModel.model_validate(row.model)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Conflict(
            f"site {site.name!r}: its stored power model is not valid ({where}: {first['msg']}); "
            "set it again with `hashgrid power set`"
        ) from None


async def _model(session: AsyncSession, site: Site) -> PowerModel:
    model = await stored_model(session, site)
    if model is None:
        raise Conflict(f"site {site.name!r} has no power model: `hashgrid power set` gives one")
    return model


def curtailment_leads(settings: ServerSettings) -> Leads:
    return Leads(
        timedelta(seconds=settings.curtail_asic_lead_s),
        timedelta(seconds=settings.curtail_drain_lead_s),
    )


async def open_event(session: AsyncSession, site: Site) -> Curtailment | None:
    """The site's curtailment in force or scheduled: there is at most one."""
    return await session.scalar(
        select(Curtailment).where(Curtailment.site_id == site.id, Curtailment.ended_at.is_(None))
    )


async def in_force(session: AsyncSession, site: Site) -> Curtailment | None:
    event = await open_event(session, site)
    return None if event is None or event.started_at is None else event


async def get(session: AsyncSession, name: str) -> SitePowerOut:
    site = await sites.get(session, name)
    current = await open_event(session, site)
    model = await stored_model(session, site)
    busy = None
    if model is not None:
        busy = busy_power(model.gpus, [fp for _, fp in await _ready_nodes(session, site)])
    return SitePowerOut(
        site=site.name,
        budget_mw=site.power_mw,
        power_state=SitePowerState(site.power_state),
        model=model,
        curtailment=None if current is None else _out(current, utcnow()),
        gpu_busy_kw=None if busy is None else busy.kw,
        gpu_busy_from=None if busy is None else busy.source,
    )


async def set_model(
    session: AsyncSession, changes: Changes, name: str, model: PowerModel
) -> SitePowerOut:
    """Store a site's power model (replacing any); its series files must be readable now."""
    site = await sites.get(session, name)
    check_sources(model)
    row = await session.get(SitePower, site.id)
    data = model.model_dump(mode="json")
    if row is None:
        session.add(SitePower(site_id=site.id, model=data))
    else:
        row.model, row.updated_at = data, utcnow()
    await session.commit()
    await changes.bump()  # the power reconciler replans; miner orders may change
    return await get(session, name)


async def _ready_nodes(session: AsyncSession, site: Site) -> list[tuple[str, dict[str, Any]]]:
    """The site's ready nodes: id and fingerprint."""
    rows = await session.execute(
        select(Node.id, Node.fingerprint).where(
            Node.site_id == site.id, Node.status == NodeStatus.READY
        )
    )
    return [(node_id, fingerprint) for node_id, fingerprint in rows]


async def node_work(session: AsyncSession, site: Site, model: PowerModel) -> NodeWork:
    """The site's ready nodes by what they serve now, and what a busy one draws."""
    ready = await _ready_nodes(session, site)
    nodes = [node_id for node_id, _ in ready]
    tiers = await session.execute(
        select(Replica.node_id, Deployment.tier, ComputeContract.id)
        .join(Deployment, Replica.deployment_id == Deployment.id)
        # A compute contract's replicas are firm whatever their deployment's tier.
        .outerjoin(
            ComputeContract,
            (Replica.contract_id == ComputeContract.id) & ComputeContract.status.in_(LIVE_CONTRACT),
        )
        .where(Replica.node_id.in_(nodes), Replica.status.in_(ACTIVE_REPLICA))
    )
    firm: set[str] = set()
    flex: set[str] = set()
    for node_id, tier, reserved in tiers:
        (firm if tier == Tier.FIRM or reserved is not None else flex).add(node_id)
    flex -= firm
    return NodeWork(
        firm=len(firm),
        flex=len(flex),
        idle=len(nodes) - len(firm) - len(flex),
        busy_kw=busy_power(model.gpus, [fp for _, fp in ready]).kw,
    )


async def current_plan(
    session: AsyncSession, site: Site, start: datetime
) -> PlannedInterval | None:
    """The site's stored plan of the interval beginning at `start`."""
    return await session.scalar(
        select(PlannedInterval).where(
            PlannedInterval.site_id == site.id, PlannedInterval.start == start
        )
    )


async def load_now(session: AsyncSession, site: Site, model: PowerModel) -> Load:
    """The site's load as planned for this interval (ASICs at full power without a plan) and
    as its GPU nodes' work draws."""
    plan = await current_plan(session, site, interval_of(utcnow(), model.interval))
    full = [(g.count or 0) * (g.watts or 0.0) / 1e6 for g in model.asics]
    asic = plan.asic_mw if plan is not None and len(plan.asic_mw) == len(full) else full
    work = await node_work(session, site, model)
    busy_kw, idle_kw = node_kw(model, work)
    return Load(
        asic_mw=tuple(asic),
        flex_mw=work.flex * busy_kw / 1e3,
        firm_mw=(work.firm * busy_kw + work.idle * idle_kw) / 1e3,
    )


async def curtail(
    session: AsyncSession, changes: Changes, name: str, body: CurtailmentCreate, leads: Leads
) -> CurtailmentOut:
    """Obey a curtailment at once, or schedule it to begin as late as its deadline allows
    (`Leads`); it replaces the site's open one, and takes over at once from one in force so
    that the site never rises in between.

    Requests for one site that race are taken one after the other: each locks the site's row
    (PostgreSQL), and the database keeps one open curtailment per site, so where a race still
    happens (SQLite takes no row locks) the loser tries again and replaces the winner's."""
    site = await sites.get(session, name)
    model = await _model(session, site)
    if body.by is not None and body.by.tzinfo is None:
        raise Invalid("by: give a time zone (e.g. 2026-11-21T08:00:00Z)")
    for _ in range(CURTAIL_ATTEMPTS):
        try:
            out = await _replace_open(session, site, model, body, leads)
        except IntegrityError:
            await session.rollback()
            site = await sites.get(session, name)
            continue
        await changes.bump()  # placement moves replicas, gateways see the state, miners get orders
        return out
    raise Conflict(f"site {name!r}: other curtailments keep arriving at once; try again")


async def _replace_open(
    session: AsyncSession, site: Site, model: PowerModel, body: CurtailmentCreate, leads: Leads
) -> CurtailmentOut:
    await session.execute(select(Site.id).where(Site.id == site.id).with_for_update())
    now = utcnow()
    previous = await open_event(session, site)
    if previous is not None:
        _close(previous, now)
        await session.flush()  # closed before the new one opens: one open per site
    event = Curtailment(
        site_id=site.id,
        source=body.source,
        reason=body.reason,
        target_mw=body.target_mw,
        by=body.by or now,
    )
    handover = previous is not None and previous.started_at is not None
    await _decide(session, site, model, event, leads, now, at_once=handover)
    session.add(event)
    await session.commit()
    return _out(event, now)


async def apply_scheduled(
    session: AsyncSession, site: Site, model: PowerModel, event: Curtailment, leads: Leads
) -> None:
    """Decide the site's scheduled curtailment `event` afresh from its load now, and begin it
    if it is due."""
    await _decide(session, site, model, event, leads, utcnow())
    await session.commit()


async def _decide(
    session: AsyncSession,
    site: Site,
    model: PowerModel,
    event: Curtailment,
    leads: Leads,
    now: datetime,
    at_once: bool = False,
) -> None:
    """What `event` sheds from the site's load now (shedding.py says in what order), and when it
    must begin; it begins when that is now."""
    load = await load_now(session, site, model)
    decided = shed(load, event.target_mw, model.asics)
    event.load_mw = load.total_mw
    event.asic_shed_mw = decided.asic_shed_mw
    event.flex_shed_mw = decided.flex_shed_mw
    event.firm_shed_mw = decided.firm_shed_mw
    event.asic_kept_mw = list(decided.asic_kept_mw)
    event.power_state = decided.power_state
    event.starts_at = now if at_once else leads.start(decided, event.by, now)
    if event.starts_at > now:
        return
    event.started_at = now
    met_by_asics = decided.power_state is SitePowerState.ACTIVE  # the plan's state stands
    if met_by_asics:
        site.power_state = await planned_state(session, site, model)
    else:
        site.power_state = decided.power_state
    try:
        event.price_usd_per_mwh, hashprice = prices_at(model, now)
    except Invalid:
        return  # a series that does not cover now: the event's costs stay unknown
    values = mining_value(model, hashprice)
    shed_mw = [mw - kept for mw, kept in zip(load.asic_mw, decided.asic_kept_mw, strict=True)]
    event.mining_usd_per_mwh = (
        sum(s * v for s, v in zip(shed_mw, values, strict=True)) / decided.asic_shed_mw
        if decided.asic_shed_mw > 0
        else 0.0
    )


async def restore(session: AsyncSession, changes: Changes, name: str) -> CurtailmentOut:
    """End the curtailment in force, or cancel a scheduled one: the site and its miners follow
    the hour's plan again."""
    site = await sites.get(session, name)
    event = await open_event(session, site)
    if event is None:
        raise Conflict(f"site {name!r} has no curtailment in force or scheduled")
    now = utcnow()
    _close(event, now)
    site.power_state = await planned_state(session, site, await stored_model(session, site))
    await session.commit()
    await changes.bump()
    return _out(event, now)


def _close(event: Curtailment, at: datetime) -> None:
    """End an event in force, with its costs, or cancel a scheduled one."""
    event.ended_at = at
    event.energy_saved_usd, event.mining_foregone_usd = _costs(event, at)


def _costs(event: Curtailment, until: datetime) -> tuple[float | None, float | None]:
    """Energy not bought (every MW shed at the price of the hour it began) and hashing not done
    (ASIC MW shed at the miners' worth), from when it began up to `until`; None before it
    began or without prices."""
    if (
        event.started_at is None
        or event.price_usd_per_mwh is None
        or event.mining_usd_per_mwh is None
    ):
        return None, None
    hours = max(0.0, (until - event.started_at).total_seconds() / 3600)
    shed_mw = event.asic_shed_mw + event.flex_shed_mw + event.firm_shed_mw
    return (
        shed_mw * event.price_usd_per_mwh * hours,
        event.asic_shed_mw * event.mining_usd_per_mwh * hours,
    )


def _out(event: Curtailment, now: datetime) -> CurtailmentOut:
    """An event as the API shows it; one in force shows its costs so far."""
    out = CurtailmentOut.model_validate(event)
    if event.ended_at is None:
        saved, foregone = _costs(event, now)
        out = out.model_copy(update={"energy_saved_usd": saved, "mining_foregone_usd": foregone})
    return out


async def plan(session: AsyncSession, name: str, hours: int, start: datetime | None) -> PlanOut:
    """The online plan for the next `hours` (from `start`'s interval, default now), not
    stored."""
    if start is not None and start.tzinfo is None:
        raise Invalid("start: give a time zone (e.g. 2025-06-01T00:00:00Z)")
    site = await sites.get(session, name)
    model = await _model(session, site)
    work = await node_work(session, site, model)
    step = model.interval
    now = interval_of(utcnow(), step)
    begin = interval_of(start, step) if start is not None else now
    planned = await _planned(session, site, model, work, begin, hours * (HOUR // step), now)
    return PlanOut(site=site.name, intervals=[p.interval for p in planned])


async def _planned(
    session: AsyncSession,
    site: Site,
    model: PowerModel,
    work: NodeWork,
    start: datetime,
    count: int,
    now: datetime,
) -> list[Planned]:
    """The online plan of `count` intervals from `start`, on the work recorded before `now`
    (the current interval's start) and the work now; the ramp steps from what the miners were
    last ordered to, for a plan that begins by now."""
    step = model.interval
    recorded = await recorded_work(session, site, start - HISTORY_H * HOUR, now, step)
    before = await asic_ordered_before(session, site, start, step) if start <= now else None
    return plan_intervals(
        site.name, site.power_mw, model, work, start, count, recorded, now, before
    )


async def recorded_work(
    session: AsyncSession, site: Site, since: datetime, until: datetime, step: timedelta
) -> dict[datetime, NodeWork]:
    """The work the site's stored plans were made from, by interval of `step`, from `since` to
    before `until` (and the `FORECAST_WEEKS` before `since`, which forecasts read)."""
    rows = await session.execute(
        select(PlannedInterval.start, PlannedInterval.firm_nodes, PlannedInterval.flex_nodes).where(
            PlannedInterval.site_id == site.id,
            PlannedInterval.start >= since - timedelta(weeks=FORECAST_WEEKS),
            PlannedInterval.start < until,
            PlannedInterval.firm_nodes.is_not(None),
        )
    )
    return {
        interval_of(t, step): NodeWork(firm=firm or 0, flex=flex or 0) for t, firm, flex in rows
    }


async def asic_ordered_before(
    session: AsyncSession, site: Site, start: datetime, step: timedelta
) -> float | None:
    """The ASIC MW the site's miners were ordered to just before the plan of the interval from
    `start` applies, which its ramp limit steps from: what a curtailment in force at `start`, or
    ended since, kept (the plan applies once it ends); else what the plan of the interval before
    (`step` earlier) ordered, if it applied; else unknown."""
    kept = await session.scalar(
        select(Curtailment.asic_kept_mw)
        .where(
            Curtailment.site_id == site.id,
            Curtailment.started_at.is_not(None),
            or_(Curtailment.ended_at.is_(None), Curtailment.ended_at >= start),
        )
        .order_by(Curtailment.started_at.desc())
        .limit(1)
    )
    if kept is not None:
        return float(sum(kept))
    before = await current_plan(session, site, start - step)
    return float(sum(before.asic_mw)) if before is not None and before.applied else None


async def planned_state(
    session: AsyncSession, site: Site, model: PowerModel | None
) -> SitePowerState:
    """The site's state with no curtailment in force: `flex_paused` while this interval's plan
    (of `model`, the site's power model) pauses flex work (flex replicas go where it pays), else
    `active`."""
    step = HOUR if model is None else model.interval
    return _state_of(await current_plan(session, site, interval_of(utcnow(), step)))


def _state_of(plan: PlannedInterval | None) -> SitePowerState:
    paused = plan is not None and plan.flex_paused
    return SitePowerState.FLEX_PAUSED if paused else SitePowerState.ACTIVE


async def store_plan(
    session: AsyncSession,
    site: Site,
    model: PowerModel,
    start: datetime,
    work: NodeWork,
    curtailed: bool,
) -> bool:
    """Plan the interval from `start` on the nodes' `work` now and store it, applied unless a
    curtailment is in force (`curtailed`), and put the site in the state the plan calls for;
    True when what the site's miners or placement should do changed."""
    (planned,) = await _planned(session, site, model, work, start, 1, start)
    applied = not curtailed
    row = await current_plan(session, site, start)
    if row is None:
        row = PlannedInterval(site_id=site.id, start=start, asic_mw=[])
        session.add(row)
    changed = row.asic_mw != planned.asic_mw or row.applied != applied
    for field, value in planned.interval.model_dump(exclude={"start", "applied"}).items():
        setattr(row, field, value)
    row.asic_mw, row.applied, row.updated_at = planned.asic_mw, applied, utcnow()
    row.firm_nodes, row.flex_nodes = work.firm, work.flex
    if applied:
        state = _state_of(row)
        changed |= site.power_state != state
        site.power_state = state
    await session.commit()
    return changed


async def history(session: AsyncSession, name: str, limit: int) -> HistoryOut:
    site = await sites.get(session, name)
    events = (
        await session.scalars(
            select(Curtailment)
            .where(Curtailment.site_id == site.id)
            .order_by(Curtailment.starts_at.desc())
            .limit(limit)
        )
    ).all()
    plans = (
        await session.scalars(
            select(PlannedInterval)
            .where(PlannedInterval.site_id == site.id)
            .order_by(PlannedInterval.start.desc())
            .limit(limit)
        )
    ).all()
    now = utcnow()
    return HistoryOut(
        site=site.name,
        curtailments=[_out(e, now) for e in events],
        plans=[IntervalOut.model_validate(p) for p in plans],
    )


async def orders(session: AsyncSession, site: Site) -> tuple[str, list[MinerOrder]]:
    """What each of the site's miners should do now, and which decision says so: a curtailment
    in force wins over the interval's plan; with neither, every miner hashes."""
    model = await stored_model(session, site)
    if model is None:
        return "no power model", []
    full = [(g.count or 0) * (g.watts or 0.0) / 1e6 for g in model.asics]
    event = await in_force(session, site)
    if event is not None and len(event.asic_kept_mw) == len(full):
        return f"curtailment {event.id[:8]} to {event.target_mw:g} MW", miner_orders(
            model.asics, event.asic_kept_mw
        )
    start = interval_of(utcnow(), model.interval)
    planned = await current_plan(session, site, start)
    if planned is not None and len(planned.asic_mw) == len(full):
        return f"plan of {start:%Y-%m-%d %H:%M} UTC", miner_orders(model.asics, planned.asic_mw)
    return "no plan for this interval", miner_orders(model.asics, full)


async def node_orders(session: AsyncSession, site: Site) -> list[NodePowerOrder]:
    """The site's GPU nodes to power off (standby) or on (waking) through their BMCs."""
    model = await stored_model(session, site)
    if model is None or not model.gpus.bmcs:
        return []
    managed = await session.scalars(
        select(Node).where(
            Node.site_id == site.id, Node.power.in_([NodePower.STANDBY, NodePower.WAKING])
        )
    )
    return [
        NodePowerOrder(node=n.name, bmc=model.gpus.bmcs[n.name], on=n.power == NodePower.WAKING)
        for n in managed
        if n.name in model.gpus.bmcs
    ]
