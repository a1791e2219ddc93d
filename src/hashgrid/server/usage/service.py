"""Storing usage records exactly once per request id, whatever a gateway resends."""

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.contracts.gateway import UsageAck, UsageRecord
from hashgrid.server.usage.tables import UsageRecordRow


async def store(session: AsyncSession, records: Sequence[UsageRecord]) -> UsageAck:
    unique = {r.request_id: r for r in records}
    existing = set(
        (
            await session.scalars(
                select(UsageRecordRow.request_id).where(UsageRecordRow.request_id.in_(unique))
            )
        ).all()
    )
    fresh = [r.model_dump() for rid, r in unique.items() if rid not in existing]
    if fresh:
        # ON CONFLICT DO NOTHING also covers a concurrent batch carrying the same ids.
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        await session.execute(insert(UsageRecordRow).on_conflict_do_nothing(), fresh)
        await session.commit()
    return UsageAck(accepted=len(fresh), duplicates=len(records) - len(fresh))


async def recent(session: AsyncSession, limit: int) -> Sequence[UsageRecordRow]:
    return (
        await session.scalars(
            select(UsageRecordRow).order_by(UsageRecordRow.started_at.desc()).limit(limit)
        )
    ).all()
