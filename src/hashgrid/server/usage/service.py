"""Storing usage records exactly once per request id, whatever a gateway resends, each with its
cost at the catalog's prices."""

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.contracts.gateway import UsageAck, UsageRecord
from hashgrid.server.catalog.tables import CatalogModel
from hashgrid.server.deployments.tables import Deployment
from hashgrid.server.usage.spend import Spend
from hashgrid.server.usage.tables import UsageRecordRow

MTOK = 1_000_000


async def store(session: AsyncSession, records: Sequence[UsageRecord], spend: Spend) -> UsageAck:
    unique = {r.request_id: r for r in records}
    existing = set(
        (
            await session.scalars(
                select(UsageRecordRow.request_id).where(UsageRecordRow.request_id.in_(unique))
            )
        ).all()
    )
    fresh = [r.model_dump() for rid, r in unique.items() if rid not in existing]
    if not fresh:
        return UsageAck(accepted=0, duplicates=len(records), spend_seq=spend.seq)
    prices = await _prices(session, {r["model"] for r in fresh})
    for r in fresh:
        prompt, completion = prices.get(r["model"], (0.0, 0.0))
        r["cost_usd"] = (r["prompt_tokens"] * prompt + r["completion_tokens"] * completion) / MTOK
    # ON CONFLICT DO NOTHING also covers a concurrent batch carrying the same ids; RETURNING
    # tells which rows this batch stored, so their cost is counted once.
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stored = set(
        (
            await session.scalars(
                insert(UsageRecordRow)
                .on_conflict_do_nothing()
                .returning(UsageRecordRow.request_id),
                fresh,
            )
        ).all()
    )
    await session.commit()
    seq = spend.add(
        (r["key_id"], r["customer_id"], r["started_at"], r["cost_usd"])
        for r in fresh
        if r["request_id"] in stored
    )
    return UsageAck(accepted=len(stored), duplicates=len(records) - len(stored), spend_seq=seq)


async def _prices(session: AsyncSession, models: set[str]) -> dict[str, tuple[float, float]]:
    """USD per million prompt and completion tokens, by the name clients use (deployment)."""
    rows = await session.execute(
        select(
            Deployment.name,
            CatalogModel.price_per_mtok_prompt,
            CatalogModel.price_per_mtok_completion,
        )
        .join(CatalogModel, Deployment.model_id == CatalogModel.id)
        .where(Deployment.name.in_(models))
    )
    return {name: (prompt, completion) for name, prompt, completion in rows}


async def recent(session: AsyncSession, limit: int) -> Sequence[UsageRecordRow]:
    return (
        await session.scalars(
            select(UsageRecordRow).order_by(UsageRecordRow.started_at.desc()).limit(limit)
        )
    ).all()
