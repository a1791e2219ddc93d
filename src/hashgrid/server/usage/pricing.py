"""Pricing usage records as they are stored: each keeps the tier, the unit prices (net of the
customer's discount) and the discount it was charged, and its exact cost in pico-dollars, from
the price book entry in force when the request started. A record no entry covers is stored
unpriced (cost 0, `priced` false): listed, and priced as soon as an entry covers it, never
silently free. See `hashgrid.billing.prices`."""

from collections.abc import MutableMapping
from datetime import UTC, date
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.billing.prices import PriceBook
from hashgrid.server.deployments.tables import Deployment
from hashgrid.server.prices.service import book
from hashgrid.server.usage.tables import UsageRecordRow


async def price(session: AsyncSession, records: list[dict[str, Any]]) -> None:
    """Set the price fields of `records` (`UsageRecord` dicts about to be stored)."""
    models = {r["model"] for r in records}
    found = await session.execute(
        select(Deployment.name, Deployment.tier).where(Deployment.name.in_(models))
    )
    tiers = {name: tier for name, tier in found}
    prices = await book(session, models, {r["customer_id"] for r in records})
    for r in records:
        charge(r, prices, tiers.get(r["model"]))


def charge(record: MutableMapping[str, Any], prices: PriceBook, tier: str | None) -> None:
    found = prices.charge(record["model"], tier, record["customer_id"], record["started_at"])
    cached = min(record.get("cached_tokens", 0), record["prompt_tokens"])
    if found is None:
        record.update(
            tier=tier,
            cached_tokens=cached,
            price_prompt=0,
            price_cached=0,
            price_completion=0,
            discount_bps=0,
            cost_pico=0,
            priced=False,
        )
        return
    p = found.prices
    record.update(
        tier=found.tier,
        cached_tokens=cached,
        price_prompt=p.prompt,
        price_cached=p.cached,
        price_completion=p.completion,
        discount_bps=found.discount_bps,
        cost_pico=p.cost(record["prompt_tokens"], cached, record["completion_tokens"]),
        priced=True,
    )


PRICE_FIELDS = (
    "tier",
    "cached_tokens",
    "price_prompt",
    "price_cached",
    "price_completion",
    "discount_bps",
    "cost_pico",
    "priced",
)


async def price_unpriced(session: AsyncSession, model: str) -> set[date]:
    """Price the stored records of `model` that had no price and that the book now covers
    (in the session's transaction); the UTC days of the records priced."""
    u = UsageRecordRow
    rows = (
        await session.scalars(
            select(u).where(u.model == model, u.priced.is_(False), u.invoice_id.is_(None))
        )
    ).all()
    if not rows:
        return set()
    prices = await book(session, {model}, {r.customer_id for r in rows})
    days: set[date] = set()
    for row in rows:
        fields = {
            "model": row.model,
            "customer_id": row.customer_id,
            "started_at": row.started_at,
            "prompt_tokens": row.prompt_tokens,
            "completion_tokens": row.completion_tokens,
            "cached_tokens": row.cached_tokens,
        }
        charge(fields, prices, row.tier)
        if fields["priced"]:
            await session.execute(
                update(u)
                .where(u.request_id == row.request_id, u.priced.is_(False))
                .values({k: fields[k] for k in PRICE_FIELDS})
            )
            days.add(row.started_at.astimezone(UTC).date())
    return days
