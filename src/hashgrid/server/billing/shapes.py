"""Invoices in the API's shapes (`contracts/api/billing.py`): money as USD decimals."""

from collections.abc import Sequence

from hashgrid.billing.invoices import Totals
from hashgrid.billing.lines import Line
from hashgrid.billing.money import cents_usd, usd
from hashgrid.contracts.api.billing import InvoiceDetail, InvoiceLineOut, InvoiceOut
from hashgrid.contracts.states import InvoiceStatus
from hashgrid.server.billing.service import Draft
from hashgrid.server.billing.tables import Invoice


def line_out(line: Line) -> InvoiceLineOut:
    return InvoiceLineOut(
        kind=line.kind,
        description=line.description,
        model=line.model,
        tier=line.tier,
        ref=line.ref,
        quantity=line.quantity,
        unit=line.unit,
        unit_price_usd=usd(line.unit_price_pico),
        amount_usd=usd(line.amount_pico),
        billed_usd=cents_usd(line.cents),
    )


def invoice_out(invoice: Invoice, customer: str) -> InvoiceOut:
    return InvoiceOut(
        number=invoice.number,
        customer=customer,
        period=invoice.period,
        status=InvoiceStatus(invoice.status),
        issued_at=invoice.issued_at,
        paid_at=invoice.paid_at,
        voided_at=invoice.voided_at,
        subtotal_usd=cents_usd(invoice.subtotal_cents),
        credits_usd=cents_usd(invoice.credits_cents),
        total_usd=cents_usd(invoice.total_cents),
    )


def invoice_detail(invoice: Invoice, customer: str, lines: Sequence[Line]) -> InvoiceDetail:
    head = invoice_out(invoice, customer)
    return InvoiceDetail(**dict(head), lines=[line_out(line) for line in lines])


def draft_detail(draft: Draft) -> InvoiceDetail:
    totals = Totals.of(draft.lines)
    return InvoiceDetail(
        customer=draft.customer.name,
        period=str(draft.period),
        status=InvoiceStatus.DRAFT,
        subtotal_usd=cents_usd(totals.subtotal),
        credits_usd=cents_usd(totals.credits),
        total_usd=cents_usd(totals.total),
        unpriced_records=draft.unpriced,
        lines=[line_out(line) for line in draft.lines],
    )
