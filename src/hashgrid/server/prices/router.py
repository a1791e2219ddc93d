"""The price book (every signed-in user reads it; the platform writes it) and customers'
discounts (a customer reads its own)."""

from typing import Annotated

from fastapi import APIRouter, Query, status

from hashgrid.contracts.api.catalog import ModelName
from hashgrid.contracts.api.prices import DiscountCreate, DiscountOut, PriceCreate, PriceOut
from hashgrid.server import pages
from hashgrid.server.db.base import utcnow
from hashgrid.server.policy import Caller
from hashgrid.server.prices import service
from hashgrid.server.state import Session, State
from hashgrid.server.usage.pricing import price_unpriced

router = APIRouter(prefix="/api/v1", tags=["prices"])


@router.get("/prices")
async def list_prices(
    session: Session,
    caller: Caller,
    page: pages.WholePage,
    model: Annotated[ModelName | None, Query(description="Only this model's entries")] = None,
) -> list[PriceOut]:
    """Every entry of the price book, by model and tier, the newest first."""
    found = await service.list_prices(session, model, page.cursor, page.limit)
    page.link(found.next_cursor)
    return [service.price_out(row) for row in found.items]


@router.post("/prices", status_code=status.HTTP_201_CREATED)
async def add_prices(
    body: PriceCreate, session: Session, state: State, caller: Caller
) -> list[PriceOut]:
    """A model's prices from a moment on (default now), for a tier or both. Records keep the
    prices they were charged; records that had none and started since then are priced now."""
    rows = await service.add_prices(session, body, utcnow())
    priced_days = await price_unpriced(session, body.model)
    await session.commit()
    state.summaries.touched(priced_days)  # their costs changed: kept sums of them no longer hold
    await state.changes.bump()  # gateways reserve and count budgets at the new prices
    return [service.price_out(row) for row in rows]


@router.get("/discounts")
async def list_discounts(
    session: Session, caller: Caller, page: pages.WholePage
) -> list[DiscountOut]:
    """The discounts the caller's organization sees: a customer its own; the platform all."""
    found = await service.list_discounts(session, caller.scope, page.cursor, page.limit)
    page.link(found.next_cursor)
    return found.items


@router.post("/discounts", status_code=status.HTTP_201_CREATED)
async def add_discount(body: DiscountCreate, session: Session, caller: Caller) -> DiscountOut:
    """A customer's discount on every unit price (of a model, or all), for requests that start
    from `effective_from` (default now) on."""
    out = await service.add_discount(session, body, utcnow())
    await session.commit()
    return out
