"""Usage records summed the way invoice lines are cut (`hashgrid.billing.invoices.UsageSum`):
per customer, model, tier, unit prices, serving node and UTC month, in the database.

Each record was priced when it was stored (its unit prices kept with it), so the sums need no
price book: a price change between two records makes two groups, and so two lines.
"""

from collections import defaultdict

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.billing.invoices import UsageSum
from hashgrid.billing.money import UnitPrices
from hashgrid.billing.periods import Period
from hashgrid.server.usage.dialects import UTCMonth
from hashgrid.server.usage.tables import UsageRecordRow

r = UsageRecordRow
# A record's cached tokens are part of its prompt tokens: never more than them.
CACHED = case((r.cached_tokens < r.prompt_tokens, r.cached_tokens), else_=r.prompt_tokens)
GROUPS = (
    r.customer_id,
    r.model,
    r.tier,
    r.price_prompt,
    r.price_cached,
    r.price_completion,
    r.node_id,
    UTCMonth(r.started_at),
)


def free(customer_id: str | None, period: Period) -> ColumnElement[bool]:
    """The records no issued invoice bills yet that `period`'s invoice would: started before
    its end, of `customer_id` (None: of every customer)."""
    conditions = [r.invoice_id.is_(None), r.started_at < period.end]
    if customer_id is not None:
        conditions.append(r.customer_id == customer_id)
    return and_(*conditions)


async def usage_sums(
    session: AsyncSession, where: ColumnElement[bool]
) -> dict[str, list[UsageSum]]:
    """The records `where` lets through, summed per customer and per invoice line's group."""
    query = (
        select(
            *GROUPS,
            func.sum(r.prompt_tokens),
            func.sum(CACHED),
            func.sum(r.completion_tokens),
        )
        .where(where)
        .group_by(*GROUPS)
    )
    found: dict[str, list[UsageSum]] = defaultdict(list)
    for row in await session.execute(query):
        customer, model, tier, prompt, cached, completion, node, month, *tokens = row
        found[customer].append(
            UsageSum(
                model=model,
                tier=tier,
                prices=UnitPrices(prompt, cached, completion),
                node_id=node,
                period=Period.parse(month),
                prompt_tokens=int(tokens[0]),
                cached_tokens=int(tokens[1]),
                completion_tokens=int(tokens[2]),
            )
        )
    return dict(found)


async def unpriced(session: AsyncSession, where: ColumnElement[bool]) -> int:
    """How many of the records `where` lets through no price covered."""
    count = await session.scalar(select(func.count()).where(where, r.priced.is_(False)))
    return int(count or 0)
