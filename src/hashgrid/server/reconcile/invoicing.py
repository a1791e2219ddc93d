"""Issues last month's invoices, a grace time after the month ends (`invoice_grace_s`), so that
the gateways' spools have drained what they held of it.

Level-triggered and idempotent: each pass looks for the customers with no invoice standing for
the month due (or a later one) and issues the invoice of each that has something to bill; one
already issued, by this pass, another server or the platform by hand, is never issued twice
(the issue itself refuses, `billing/service.py`). A customer with unpriced records is skipped
with a warning and tried again each pass. Once a pass leaves nothing to issue for the month,
the passes after it do nothing until the next month is due.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hashgrid.billing.periods import Period
from hashgrid.server.billing import service
from hashgrid.server.billing.providers import LineProvider
from hashgrid.server.db.base import utcnow
from hashgrid.server.errors import Conflict

log = structlog.get_logger("hashgrid.server.reconcile.invoicing")


def due(now: datetime, grace: timedelta) -> Period:
    """The month whose invoices are due: the last one that ended `grace` ago or more."""
    return Period.of(now - grace).previous()


class InvoiceReconciler:
    name = "invoicing"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        providers: Sequence[LineProvider],
        grace_s: float,
    ) -> None:
        self._sessions = sessions
        self._providers = providers
        self._grace = timedelta(seconds=grace_s)
        self._done: Period | None = None  # the last month this process left nothing to issue in

    async def reconcile(self) -> None:
        now = utcnow()
        period = due(now, self._grace)
        if period == self._done:
            return
        async with self._sessions() as session:
            waiting = list((await session.scalars(service.waiting(period))).all())
        left = 0
        for customer in waiting:
            async with self._sessions() as session:
                draft = await service.draft(session, self._providers, customer, period)
                if not draft.lines:
                    continue
                if draft.unpriced:
                    log.warning(
                        "invoice not issued: usage records without a price",
                        customer=customer.name,
                        period=str(period),
                        unpriced=draft.unpriced,
                    )
                    left += 1
                    continue
                try:
                    invoice = await service.issue(
                        session, self._providers, customer.name, period, now
                    )
                except Conflict as e:  # issued meanwhile elsewhere, or priced records went
                    log.info("invoice not issued", customer=customer.name, reason=e.detail)
                    left += 1
                    continue
                log.info("invoice issued", customer=customer.name, number=invoice.number)
        if not left:
            self._done = period
