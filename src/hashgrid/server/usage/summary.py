"""A caller's usage summed by day, model, key or region, in the database.

The sums run in SQL on the scoped, windowed records (`service.visible_to`), which the indexes
on (customer_id, started_at) and (node_id, started_at) bound and, on PostgreSQL, hold all that
is summed (migration 0022): no record is read into Python, nor from the table. A record's day
is its UTC calendar day (`dialects.UTCDay`).
"""

from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.contracts.api.organizations import OrgKind
from hashgrid.contracts.api.usage import Grouping, UsageSummaryQuery, UsageSummaryRow
from hashgrid.server.sites.tables import Site
from hashgrid.server.usage.dialects import UTCDay
from hashgrid.server.usage.service import filtered, visible_to
from hashgrid.server.usage.tables import UsageRecordRow

COST_QUANTUM = Decimal("0.000000001")  # USD


r = UsageRecordRow
GROUP_COLUMNS = {
    Grouping.DAY: UTCDay(r.started_at).label("day"),
    Grouping.MODEL: r.model.label("model"),
    Grouping.KEY: r.key_id.label("key_id"),
    Grouping.REGION: Site.region.label("region"),
}


async def summarize(
    session: AsyncSession, scope: str | None, kind: OrgKind | None, asked: UsageSummaryQuery
) -> list[UsageSummaryRow]:
    """The records `scope` sees in `asked`'s window and filters, summed per group, in the
    order of the groups' values."""
    groups = [GROUP_COLUMNS[g] for g in asked.group_by]
    query = (
        select(
            *groups,
            func.count().label("requests"),
            func.coalesce(func.sum(r.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(r.completion_tokens), 0).label("completion_tokens"),
            func.coalesce(func.sum(r.cost_usd), 0.0).label("cost_usd"),
        )
        .select_from(r)
        .where(visible_to(scope, kind), filtered(asked))
        .group_by(*groups)
        .order_by(*(g.asc().nulls_last() for g in groups))
    )
    if Grouping.REGION in asked.group_by:
        query = query.outerjoin(Site, Site.name == r.site)
    return [_row(found._mapping) for found in await session.execute(query)]


def _row(found: Any) -> UsageSummaryRow:
    values = dict(found)
    values["cost_usd"] = Decimal(repr(float(values["cost_usd"]))).quantize(COST_QUANTUM)
    return UsageSummaryRow(**values)
