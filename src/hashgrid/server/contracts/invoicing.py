"""What compute contracts put on a customer's invoice: a provider of lines for the invoice
builder (`server/billing/`), which takes one such function per kind of charge."""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.billing.contracts import lines
from hashgrid.billing.lines import Line
from hashgrid.billing.periods import Period
from hashgrid.server.contracts.records import terms_of, watched_hours
from hashgrid.server.contracts.tables import ComputeContract
from hashgrid.server.db.base import utcnow


async def contract_lines(
    session: AsyncSession, customer_id: str, period: Period, until: datetime | None = None
) -> list[Line]:
    """Every compute contract line of `customer_id` in `period`: per contract whose term meets
    it, the reserved replica-hours over by `until` (now, when not given) and the SLA credit for
    those that fell short, in the order the contracts start. A period that is over gives the
    same lines whenever it is asked: its hours are no longer written."""
    contracts = (
        await session.scalars(
            select(ComputeContract)
            .where(
                ComputeContract.customer_id == customer_id,
                ComputeContract.starts_at < period.end,
                ComputeContract.ends_at > period.start,
            )
            .order_by(ComputeContract.starts_at, ComputeContract.id)
        )
    ).all()
    hours = await watched_hours(session, (c.id for c in contracts), period.start, period.end)
    until = until or utcnow()
    return [line for c in contracts for line in lines(terms_of(c), hours[c.id], period, until)]
