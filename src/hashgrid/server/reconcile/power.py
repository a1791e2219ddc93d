"""Power: scheduled curtailments begun when due, and each interval's online plan for every site
with a power model, stored and applied.

A pass first decides each site's scheduled curtailment afresh from the site's load and begins
it when due (`power.service.apply_scheduled`), and puts the site's GPU nodes idle long enough to
standby (power/standby.py). It then plans the current interval of each site (an hour, or 15
minutes where its price series has them; the pure `energy.plan_online` on the site's stored
sources, `server/power/planning.py`) and stores it, applied unless a curtailment is in force;
the site's miners follow the applied plan (`power.service.orders`). A site is planned again
only when the interval, its power model, its nodes' work or its curtailment changed: a pass
reads a month of prices. The pass returns when the next curtailment, standby or interval is
due, so the runner passes again then and miners change at the interval's first second.
"""

from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hashgrid.contracts.api.power import PowerModel
from hashgrid.server.changes import Changes
from hashgrid.server.db.base import utcnow
from hashgrid.server.errors import Invalid
from hashgrid.server.power import service, standby
from hashgrid.server.power.market import interval_of
from hashgrid.server.power.planning import NodeWork
from hashgrid.server.power.shedding import Leads
from hashgrid.server.power.tables import SitePower
from hashgrid.server.sites.tables import Site

log = structlog.get_logger("hashgrid.server.power")

# What a site's last plan was made from: the interval, the model's version, the nodes' work, and
# whether a curtailment was in force.
Inputs = tuple[datetime, datetime, NodeWork, bool]


class PowerReconciler:
    name = "power"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        changes: Changes,
        leads: Leads,
        standby_after: timedelta,
    ) -> None:
        self._sessions = sessions
        self._changes = changes
        self._leads = leads
        self._standby_after = standby_after
        self._planned: dict[str, Inputs] = {}

    async def reconcile(self) -> float | None:
        """One pass; the seconds until the next scheduled curtailment, idle node's standby or
        site's next interval is due, if any."""
        now = utcnow()
        changed = False
        due: list[datetime] = []
        async with self._sessions() as session:
            site_ids = list(await session.scalars(select(SitePower.site_id)))
        for site_id in site_ids:
            # Each site in its own session, and a site that fails (a stored model that no longer
            # validates, a plan that cannot be made) is logged and skipped: the others are
            # planned all the same, and it is tried again next pass.
            async with self._sessions() as session:
                try:
                    changed |= await self._site(session, site_id, now, due)
                except Exception:
                    log.exception("power pass failed for a site; the others go on", site=site_id)
                    changed = True  # what it committed before failing, watchers read again
        if changed:
            # Placement, the gateways' view and the site agents' miner orders follow the
            # curtailment begun or the new plan.
            await self._changes.bump()
        return None if not due else max(0.0, (min(due) - utcnow()).total_seconds())

    async def _site(
        self, session: AsyncSession, site_id: str, now: datetime, due: list[datetime]
    ) -> bool:
        """Pass over one site, adding when it is due again to `due`; True when what its miners
        or placement should do changed."""
        site, power = await session.get(Site, site_id), await session.get(SitePower, site_id)
        if site is None or power is None:
            return False  # deleted since the pass began
        changed = False
        model = PowerModel.model_validate(power.model)
        event = await service.open_event(session, site)
        if event is not None and event.started_at is None:
            await service.apply_scheduled(session, site, model, event, self._leads)
            if event.started_at is None:
                due.append(event.starts_at)
            else:
                changed = True  # it began
        curtailed = event is not None and event.started_at is not None
        idle = await standby.standby_idle(session, site, model, self._standby_after)
        if idle.off:
            log.info("idle nodes to standby", site=site.name, nodes=idle.off)
            changed = True  # the site agent powers them off
        if idle.next_at is not None:
            due.append(idle.next_at)
        work = await service.node_work(session, site, model)
        start = interval_of(now, model.interval)
        due.append(start + model.interval)
        inputs = (start, power.updated_at, work, curtailed)
        if self._planned.get(site.id) == inputs:
            return changed
        try:
            changed |= await service.store_plan(session, site, model, start, work, curtailed)
        except Invalid as e:
            # A series that does not cover this interval: no plan, miners keep their orders.
            log.warning("no power plan this interval", site=site.name, reason=e.detail)
        self._planned[site.id] = inputs
        return changed
