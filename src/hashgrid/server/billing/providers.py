"""The seam where invoice lines other than usage come from (compute contracts' reserved hours
and SLA credits): a line provider is asked for a customer's lines of a period when its draft is
read and when its invoice is issued, and what it answers is stored with the invoice like usage
lines. The server's state holds the providers (`ServerState.line_providers`)."""

from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.billing.lines import Line
from hashgrid.billing.periods import Period

# (session, customer id, period) -> the customer's lines of the period: CONTRACT lines, and
# CREDIT lines (negative amounts) whose sources name the node that caused them.
LineProvider = Callable[[AsyncSession, str, Period], Awaitable[list[Line]]]


async def provided(
    providers: Sequence[LineProvider], session: AsyncSession, customer_id: str, period: Period
) -> list[Line]:
    """Every provider's lines of `customer_id`'s `period`."""
    return [line for p in providers for line in await p(session, customer_id, period)]
