"""GPU nodes powered off while idle and woken for work, through their BMCs.

The plan counts a node without work as off (energy/site.py); a node kept on draws its idle power
(an H100 server, over 1 kW) for nothing. So a node whose BMC the site's power model names goes
to `standby` once it has had no replica for `idle_for` (`node_standby_after_s`, like Kubernetes'
cluster autoscaler's scale-down-unneeded-time): it takes no new replica, and the site agent
powers it off. Placement wakes nodes when replicas fit nowhere that is up (`wanted_awake`: the
same scheduler, asked where they would go were those nodes up, the way the cluster autoscaler
simulates a new node). Any node with a BMC that is down may be woken (`sleeping`): one in
standby, and one lost while hashgrid had it on (powered off by hand, or its shutdown outlasted
the wake that came during it); powering on a machine that is on changes nothing. A woken node is
`waking` until its agent is back, then `on` (`nodes.service.set_status`); one that never went
down is `on` once it has stayed ready for a node TTL after the wake (`awake_if_up`), the time it
would have taken to be declared lost.

A node whose BMC refuses to power it off (the site agent reports the failure) is `on` again at
once (`power_results`): it is up and idle, so placement may use it, and the idle wait starts
over before the next try, as the cluster autoscaler returns a node it failed to remove and backs
off: each refusal in a row doubles the wait (`standby_due`, up to 64 times), and a power-off
done resets it.
"""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.contracts.agent import NodePowerOutcome
from hashgrid.contracts.api.power import PowerModel, valid_model
from hashgrid.contracts.states import (
    ACTIVE_REPLICA,
    NodeAdmission,
    NodePower,
    NodeStatus,
    ReplicaStatus,
)
from hashgrid.scheduler import Snapshot, plan
from hashgrid.server.db.base import utcnow
from hashgrid.server.deployments.tables import Replica
from hashgrid.server.nodes.tables import Node
from hashgrid.server.power.tables import SitePower
from hashgrid.server.sites.tables import Site

HOLDING = [*ACTIVE_REPLICA, ReplicaStatus.STOPPING]  # a node with these is not idle
WAKE_GIVE_UP = timedelta(minutes=10)  # a GPU server boots in 2-5 minutes
MAX_DOUBLINGS = 6  # a BMC that keeps refusing is tried every 16 h at the default 15 min wait


@dataclass(frozen=True)
class Standby:
    off: list[str]  # nodes just put to standby, by name
    next_at: datetime | None  # when the next idle node will have been idle long enough


async def standby_idle(
    session: AsyncSession, site: Site, model: PowerModel, idle_for: timedelta
) -> Standby:
    """Order off the site's ready, powered nodes with a BMC that have held no replica for
    `idle_for` (an operator's cordon or drain leaves a node alone, and so does a pending
    verification)."""
    if not model.gpus.bmcs:
        return Standby([], None)
    candidates = (
        await session.scalars(
            select(Node).where(
                Node.site_id == site.id,
                Node.status == NodeStatus.READY,
                Node.power == NodePower.ON,
                Node.cordoned.is_(False),
                Node.drain_deadline.is_(None),
                # A pending node must stay up to benchmark: nothing would wake it for that.
                Node.admission != NodeAdmission.PENDING,
                Node.name.in_(list(model.gpus.bmcs)),
            )
        )
    ).all()
    if not candidates:
        return Standby([], None)
    ids = [n.id for n in candidates]
    busy = set(
        await session.scalars(
            select(Replica.node_id).where(Replica.node_id.in_(ids), Replica.status.in_(HOLDING))
        )
    )
    last_work: dict[str, datetime] = dict(
        (
            await session.execute(
                select(Replica.node_id, func.max(Replica.updated_at))
                .where(Replica.node_id.in_(ids))
                .group_by(Replica.node_id)
            )
        ).all()
    )
    now = utcnow()
    off, later = [], []
    for node in candidates:
        if node.id in busy:
            continue
        # Idle since it joined or came back, was last powered on, or last held a replica: a
        # node just woken gets the whole wait to receive the work it was woken for.
        times = (node.status_changed_at, node.power_changed_at, last_work.get(node.id))
        due = standby_due(max(t for t in times if t is not None), idle_for, node.power_refusals)
        if due <= now:
            node.power, node.power_changed_at = NodePower.STANDBY, now
            off.append(node.name)
        else:
            later.append(due)
    if off:
        await session.commit()
    return Standby(off, min(later, default=None))


def wanted_awake(snapshot: Snapshot, asleep: Iterable[str], pending: Iterable[str]) -> set[str]:
    """The nodes among `asleep` (`sleeping`) that the scheduler would place replicas of the
    `pending` deployments on, were they up: those the replicas it cannot place now need."""
    sleeping, waiting = set(asleep), set(pending)
    if not sleeping or not waiting:
        return set()
    awake = tuple(replace(n, schedulable=True) if n.id in sleeping else n for n in snapshot.nodes)
    decided = plan(replace(snapshot, nodes=awake))
    return {p.node_id for p in decided.places if p.deployment_id in waiting} & sleeping


async def sleeping(session: AsyncSession) -> list[str]:
    """Nodes placement may wake: in standby, lost while on, or waking for less than
    `WAKE_GIVE_UP` (one that has not come back by then is left to its repeated order, so that
    placement looks to others), with a BMC."""
    bmcs = {
        power.site_id: set(model.gpus.bmcs)
        for power in await session.scalars(select(SitePower))
        if (model := valid_model(power.model)) is not None
    }
    rows = await session.execute(
        select(
            Node.id, Node.site_id, Node.name, Node.power, Node.power_changed_at, Node.status
        ).where(Node.site_id.in_([site for site, names in bmcs.items() if names]))
    )
    given_up = utcnow() - WAKE_GIVE_UP
    out = []
    for node_id, site_id, name, power, changed_at, status in rows:
        if power == NodePower.WAKING:
            down = changed_at is None or changed_at > given_up
        else:
            down = power == NodePower.STANDBY or status == NodeStatus.LOST
        if down and name in bmcs[site_id]:
            out.append(node_id)
    return out


async def wake(session: AsyncSession, node_ids: Iterable[str]) -> list[str]:
    """Order `node_ids` on (those not waking already); their names."""
    now = utcnow()
    woken = []
    for node_id in node_ids:
        node = await session.get(Node, node_id)
        if node is None or node.power == NodePower.WAKING:
            continue
        node.power, node.power_changed_at = NodePower.WAKING, now
        woken.append(node.name)
    if woken:
        await session.commit()
    return woken


def standby_due(idle_since: datetime, idle_for: timedelta, refusals: int) -> datetime:
    """When a node idle since `idle_since` goes to standby: after `idle_for`, doubled for each
    power-off its BMC refused in a row (at most `MAX_DOUBLINGS` times)."""
    return idle_since + idle_for * (1 << min(refusals, MAX_DOUBLINGS))


async def power_results(
    session: AsyncSession, site_id: str, outcomes: Iterable[NodePowerOutcome]
) -> bool:
    """What the site's BMCs did with the standby nodes' power-offs: a node whose BMC refused is
    `on` again, one more refusal in a row; one powered off has none (module docstring). True
    when a node is back in use."""
    done = {o.node: o.on for o in outcomes}
    standby = (
        await session.scalars(
            select(Node).where(
                Node.site_id == site_id,
                Node.power == NodePower.STANDBY,
                Node.name.in_(list(done)),
            )
        )
    ).all()
    now = utcnow()
    back = False
    for node in standby:
        if done[node.name] is None:  # refused
            node.power, node.power_changed_at = NodePower.ON, now
            node.power_refusals += 1
            back = True
        elif done[node.name] is False:  # powered off
            node.power_refusals = 0
    await session.commit()
    return back


async def awake_if_up(session: AsyncSession, ttl: timedelta) -> bool:
    """Mark `on` the waking nodes that stayed ready for `ttl` after their wake: they never went
    down. True if any."""
    now = utcnow()
    stayed = (
        await session.scalars(
            select(Node).where(
                Node.power == NodePower.WAKING,
                Node.status == NodeStatus.READY,
                Node.status_changed_at < Node.power_changed_at,
                Node.power_changed_at < now - ttl,
            )
        )
    ).all()
    for node in stayed:
        node.power, node.power_changed_at = NodePower.ON, now
    if stayed:
        await session.commit()
    return bool(stayed)
