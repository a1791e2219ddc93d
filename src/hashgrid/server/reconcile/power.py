"""Power: each hour's online plan for every site with a power model, stored and applied.

A pass plans the current hour of each site (the pure `energy.plan_online` on the site's stored
sources, `server/power/planning.py`) and stores it, applied unless a curtailment is in force;
the site's miners follow the applied plan (`power.service.orders`). A site is planned again
only when the hour, its power model or its nodes' work changed: a pass reads a month of prices.
"""

from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hashgrid.server.changes import Changes
from hashgrid.server.db.base import utcnow
from hashgrid.server.errors import Invalid
from hashgrid.server.power import service
from hashgrid.server.power.market import hour_of
from hashgrid.server.power.planning import NodeWork
from hashgrid.server.power.schemas import PowerModel
from hashgrid.server.power.tables import SitePower
from hashgrid.server.sites.tables import Site

log = structlog.get_logger("hashgrid.server.power")

# What a site's last plan was made from: the hour, the model's version, the nodes' work, and
# whether a curtailment was in force.
Inputs = tuple[datetime, datetime, NodeWork, bool]


class PowerReconciler:
    name = "power"

    def __init__(self, sessions: async_sessionmaker[AsyncSession], changes: Changes) -> None:
        self._sessions = sessions
        self._changes = changes
        self._planned: dict[str, Inputs] = {}

    async def reconcile(self) -> None:
        hour = hour_of(utcnow())
        changed = False
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(Site, SitePower).join(SitePower, SitePower.site_id == Site.id)
                )
            ).all()
            for site, power in rows:
                curtailed = await service.in_force(session, site) is not None
                inputs = (hour, power.updated_at, await service.node_work(session, site), curtailed)
                if self._planned.get(site.id) == inputs:
                    continue
                try:
                    model = PowerModel.model_validate(power.model)
                    changed |= await service.store_plan(session, site, model, hour)
                except Invalid as e:
                    # A series that does not cover this hour: no plan, miners keep their orders.
                    log.warning("no power plan this hour", site=site.name, reason=e.detail)
                self._planned[site.id] = inputs
        if changed:
            await self._changes.bump()  # the site agents' miner orders follow the new plan
