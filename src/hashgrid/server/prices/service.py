"""The price book and customers' discounts: what every usage record is charged at."""

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.billing.money import MoneyError, UnitPrices, price_of, usd_per_mtok
from hashgrid.billing.prices import TIERS, Discount, PriceBook, PriceEntry
from hashgrid.contracts.api.organizations import OrgKind
from hashgrid.contracts.api.prices import DiscountCreate, DiscountOut, PriceCreate, PriceOut
from hashgrid.server import pages
from hashgrid.server.catalog.tables import CatalogModel
from hashgrid.server.deployments.tables import Deployment
from hashgrid.server.errors import Conflict, Invalid, NotFound
from hashgrid.server.organizations import service as organizations
from hashgrid.server.prices.tables import DiscountRow, PriceRow


async def add_prices(session: AsyncSession, body: PriceCreate, now: datetime) -> list[PriceRow]:
    """The entries `body` makes (one per tier), flushed, not committed."""
    known = await session.scalar(
        select(Deployment.id).where(Deployment.name == body.model).limit(1)
    ) or await session.scalar(select(CatalogModel.id).where(CatalogModel.name == body.model))
    if known is None:
        raise NotFound(f"no deployment or catalog model is called {body.model!r}")
    try:
        prompt, completion = price_of(body.prompt), price_of(body.completion)
        cached = prompt if body.cached is None else price_of(body.cached)
    except MoneyError as e:
        raise Invalid(str(e)) from e
    start = body.effective_from or now
    tiers = [body.tier.value] if body.tier is not None else list(TIERS)
    taken = await session.scalar(
        select(PriceRow.tier).where(
            PriceRow.model == body.model,
            PriceRow.tier.in_(tiers),
            PriceRow.effective_from == start,
        )
    )
    if taken is not None:
        raise Conflict(f"{body.model} ({taken}) has a price from {start.isoformat()} already")
    rows = [
        PriceRow(
            model=body.model,
            tier=tier,
            effective_from=start,
            prompt=prompt,
            cached=cached,
            completion=completion,
        )
        for tier in tiers
    ]
    session.add_all(rows)
    await session.flush()
    return rows


ORDER = pages.Order(
    pages.By(PriceRow.model), pages.By(PriceRow.tier), pages.By(PriceRow.effective_from, True)
)


async def list_prices(
    session: AsyncSession, model: str | None, cursor: str | None, limit: int
) -> pages.Items[PriceRow]:
    """The book by model and tier, newest entry first."""
    query = select(PriceRow)
    if model is not None:
        query = query.where(PriceRow.model == model)
    return await pages.scalars(session, query, ORDER, cursor, limit)


def price_out(row: PriceRow) -> PriceOut:
    return PriceOut.model_validate(
        {
            "model": row.model,
            "tier": row.tier,
            "effective_from": row.effective_from,
            "prompt": usd_per_mtok(row.prompt),
            "cached": usd_per_mtok(row.cached),
            "completion": usd_per_mtok(row.completion),
        }
    )


async def add_discount(session: AsyncSession, body: DiscountCreate, now: datetime) -> DiscountOut:
    customer = await organizations.get(session, body.customer, OrgKind.CUSTOMER)
    row = DiscountRow(
        customer_id=customer.id,
        model=body.model,
        bps=int(body.percent * 100),
        effective_from=body.effective_from or now,
    )
    session.add(row)
    await session.flush()
    return discount_out(row, customer.name)


DISCOUNT_ORDER = pages.Order(
    pages.By(DiscountRow.customer_id),
    pages.By(DiscountRow.effective_from, True),
    pages.By(DiscountRow.id),
)


async def list_discounts(
    session: AsyncSession, scope: str | None, cursor: str | None, limit: int
) -> pages.Items[DiscountOut]:
    """The discounts of the customers `scope` sees (None: every one), by customer, newest first."""
    query = select(DiscountRow)
    if scope is not None:
        query = query.where(DiscountRow.customer_id == scope)
    found = await pages.scalars(session, query, DISCOUNT_ORDER, cursor, limit)
    names = await organizations.names_of(session, (d.customer_id for d in found.items))
    return pages.Items(
        [discount_out(d, names[d.customer_id]) for d in found.items], found.next_cursor
    )


def discount_out(row: DiscountRow, customer: str) -> DiscountOut:
    return DiscountOut(
        customer=customer,
        model=row.model,
        percent=Decimal(row.bps) / 100,
        effective_from=row.effective_from,
    )


async def book(
    session: AsyncSession, models: Iterable[str], customers: Iterable[str] = ()
) -> PriceBook:
    """The entries of `models` and the discounts of `customers`, every date of each."""
    models, customers = set(models), set(customers)
    entries = (await session.scalars(select(PriceRow).where(PriceRow.model.in_(models)))).all()
    discounts: Sequence[DiscountRow] = []
    if customers:
        discounts = (
            await session.scalars(
                select(DiscountRow).where(
                    DiscountRow.customer_id.in_(customers),
                    or_(DiscountRow.model.is_(None), DiscountRow.model.in_(models)),
                )
            )
        ).all()
    return PriceBook(
        (
            PriceEntry(
                e.model, e.tier, e.effective_from, UnitPrices(e.prompt, e.cached, e.completion)
            )
            for e in entries
        ),
        (Discount(d.customer_id, d.model, d.bps, d.effective_from) for d in discounts),
    )
