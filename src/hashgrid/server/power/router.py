"""A site's power: its model, curtailments, plans and their history."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from hashgrid.contracts.api.common import Moment
from hashgrid.contracts.api.power import (
    CurtailmentCreate,
    CurtailmentOut,
    HistoryOut,
    PlanOut,
    PowerModel,
    SitePowerOut,
)
from hashgrid.server.params import PathName
from hashgrid.server.policy import Caller
from hashgrid.server.power import reports, service
from hashgrid.server.sites import service as sites
from hashgrid.server.state import Session, State


async def _visible_site(name: PathName, session: Session, caller: Caller) -> None:
    """Every route here is about one site: a site the caller may not see is a 404."""
    await sites.get(session, name, caller.scope)


router = APIRouter(
    prefix="/api/v1/sites/{name}", tags=["power"], dependencies=[Depends(_visible_site)]
)


async def _with_miners(out: SitePowerOut, session: Session) -> SitePowerOut:
    site = await sites.get(session, out.site)
    return out.model_copy(update={"miners": await reports.summary(session, site.id)})


@router.get("/power")
async def get_power(name: PathName, session: Session) -> SitePowerOut:
    """The site's power model, state, curtailment in force and miners' last report."""
    return await _with_miners(await service.get(session, name), session)


@router.put("/power")
async def set_power(
    name: PathName, body: PowerModel, session: Session, state: State
) -> SitePowerOut:
    """Replace the site's power model: ASIC groups, GPU node economics, price and hashprice."""
    out = await service.set_model(session, state.changes, name, body)
    return await _with_miners(out, session)


@router.post("/curtailments", status_code=status.HTTP_201_CREATED)
async def curtail(
    name: PathName, body: CurtailmentCreate, session: Session, state: State
) -> CurtailmentOut:
    """Bring the site down to `target_mw` by `by`: ASICs first, then flex, then firm replicas
    leave; at once, or scheduled to begin a lead before a future `by`."""
    leads = service.curtailment_leads(state.settings)
    return await service.curtail(session, state.changes, name, body, leads)


@router.delete("/curtailments")
async def restore(name: PathName, session: Session, state: State, caller: Caller) -> CurtailmentOut:
    """End the curtailment in force or cancel a scheduled one: the site is active again, its
    miners follow the plan."""
    return await service.restore(session, state.changes, name)


@router.get("/power/plan")
async def plan(
    name: PathName,
    session: Session,
    hours: Annotated[int, Query(ge=1, le=service.MAX_PLAN_HOURS)] = 24,
    start: Annotated[Moment | None, Query(description="Default: now")] = None,
) -> PlanOut:
    """The online plan per interval (an hour, or 15 minutes on a 15-minute price series): MW
    to mining, to inference, offered to the grid; revenue."""
    return await service.plan(session, name, hours, start)


@router.get("/power/history")
async def history(
    name: PathName,
    session: Session,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> HistoryOut:
    """Curtailment events and stored plans, newest first."""
    return await service.history(session, name, limit)
