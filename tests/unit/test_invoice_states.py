"""An invoice's statuses: draft -> issued -> paid | void, and nothing else; and which month's
invoices the monthly pass issues."""

from datetime import UTC, datetime, timedelta

import pytest

from hashgrid.billing.periods import Period
from hashgrid.contracts.states import INVOICE_TRANSITIONS, InvoiceStatus, invoice_can_move
from hashgrid.server.reconcile.invoicing import due

S = InvoiceStatus
ALLOWED = {(S.DRAFT, S.ISSUED), (S.ISSUED, S.PAID), (S.ISSUED, S.VOID)}


def test_every_invoice_status_is_in_the_transition_table() -> None:
    assert set(INVOICE_TRANSITIONS) == set(InvoiceStatus)


@pytest.mark.parametrize("current", list(InvoiceStatus))
@pytest.mark.parametrize("new", list(InvoiceStatus))
def test_an_invoice_moves_only_along_its_edges(current: S, new: S) -> None:
    assert invoice_can_move(current, new) == ((current, new) in ALLOWED)


@pytest.mark.parametrize(
    ("now", "period"),
    [
        (datetime(2026, 12, 1, 0, 59, tzinfo=UTC), Period(2026, 10)),  # November's grace runs
        (datetime(2026, 12, 1, 1, 0, tzinfo=UTC), Period(2026, 11)),
        (datetime(2027, 1, 15, tzinfo=UTC), Period(2026, 12)),
    ],
)
def test_last_months_invoices_are_due_a_grace_time_after_it_ends(
    now: datetime, period: Period
) -> None:
    assert due(now, timedelta(hours=1)) == period
