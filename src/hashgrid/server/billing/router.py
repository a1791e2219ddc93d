"""Invoices (customers read their own; the platform issues, marks paid, voids), operator
statements, payouts, the ledger, and operators' shares."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from hashgrid.billing.periods import Period
from hashgrid.contracts.api.billing import (
    NUMBER_PATTERN,
    PERIOD_PATTERN,
    InvoiceDetail,
    InvoiceIssue,
    InvoiceOut,
    LedgerOut,
    Recomputation,
    ShareOut,
    ShareSet,
    StatementOut,
)
from hashgrid.contracts.states import InvoiceStatus
from hashgrid.server import pages
from hashgrid.server.billing import documents, service, statements
from hashgrid.server.billing.owners import stored_line
from hashgrid.server.billing.shapes import draft_detail, invoice_detail, invoice_out
from hashgrid.server.db.base import utcnow
from hashgrid.server.params import PathName, filter_by
from hashgrid.server.policy import Caller
from hashgrid.server.state import Session, State

router = APIRouter(prefix="/api/v1", tags=["billing"])

Number = Annotated[str, Path(max_length=20, pattern=NUMBER_PATTERN, description="HG-2026-000001")]
PeriodQuery = Annotated[
    str | None,
    Query(pattern=PERIOD_PATTERN, description="YYYY-MM, a UTC month (default: this one)"),
]
CSV = "text/csv; charset=utf-8"


def _period(text: str | None) -> Period:
    return Period.parse(text) if text is not None else Period.of(utcnow())


@router.get("/invoices")
async def list_invoices(
    session: Session,
    caller: Caller,
    page: pages.Page,
    period: PeriodQuery = None,
    customer: Annotated[str | None, filter_by("Of this customer (a name)")] = None,
    invoice_status: Annotated[InvoiceStatus | None, Query(alias="status")] = None,
) -> list[InvoiceOut]:
    """The issued invoices the caller sees (a customer its own), newest number first."""
    found = await service.listed(
        session,
        caller.scope,
        page.cursor,
        page.limit,
        Period.parse(period) if period else None,
        customer,
        invoice_status,
    )
    page.link(found.next_cursor)
    return [invoice_out(invoice, name) for invoice, name in found.items]


@router.get("/invoices/draft")
async def draft_invoice(
    session: Session,
    state: State,
    caller: Caller,
    customer: Annotated[str | None, filter_by("The customer (a name; default: yours)")] = None,
    period: PeriodQuery = None,
) -> InvoiceDetail:
    """A customer's invoice of a period (default: this month) as it would be issued now,
    computed from its records not yet invoiced."""
    org = await service.customer_of(session, customer, caller.scope)
    draft = await service.draft(session, state.line_providers, org, _period(period))
    return draft_detail(draft)


@router.post("/invoices", status_code=status.HTTP_201_CREATED)
async def issue_invoice(
    body: InvoiceIssue, session: Session, state: State, caller: Caller
) -> InvoiceDetail:
    """Issue a customer's invoice of an ended period: numbered, stored, never changed after."""
    invoice = await service.issue(
        session, state.line_providers, body.customer, Period.parse(body.period), utcnow()
    )
    rows = await service.stored_lines(session, invoice)
    return invoice_detail(invoice, body.customer, [stored_line(r) for r in rows])


async def _detail(session: Session, number: str, scope: str | None) -> InvoiceDetail:
    invoice, customer = await service.find(session, number, scope)
    rows = await service.stored_lines(session, invoice)
    return invoice_detail(invoice, customer, [stored_line(r) for r in rows])


@router.get("/invoices/{number}")
async def get_invoice(number: Number, session: Session, caller: Caller) -> InvoiceDetail:
    return await _detail(session, number, caller.scope)


@router.get("/invoices/{number}/csv", response_class=Response)
async def invoice_csv(number: Number, session: Session, caller: Caller) -> Response:
    """The invoice's lines and totals as CSV."""
    text = documents.invoice_csv(await _detail(session, number, caller.scope))
    disposition = f'attachment; filename="{number}.csv"'
    return Response(text, media_type=CSV, headers={"content-disposition": disposition})


@router.get("/invoices/{number}/pdf", response_class=Response)
async def invoice_pdf(number: Number, session: Session, caller: Caller) -> Response:
    """The invoice as a PDF document."""
    pdf = documents.invoice_pdf(await _detail(session, number, caller.scope))
    disposition = f'attachment; filename="{number}.pdf"'
    return Response(pdf, media_type="application/pdf", headers={"content-disposition": disposition})


@router.get("/invoices/{number}/recomputation")
async def recompute_invoice(number: Number, session: Session, caller: Caller) -> Recomputation:
    """The invoice next to its lines computed afresh from the usage records it bills: every
    difference is 0."""
    invoice, _ = await service.find(session, number, caller.scope)
    return await service.recompute(session, invoice)


@router.post("/invoices/{number}/pay")
async def pay_invoice(number: Number, session: Session, caller: Caller) -> InvoiceOut:
    invoice, customer = await service.move(session, number, InvoiceStatus.PAID, utcnow())
    return invoice_out(invoice, customer)


@router.post("/invoices/{number}/void")
async def void_invoice(number: Number, session: Session, caller: Caller) -> InvoiceOut:
    """Cancel an issued invoice: its usage records are billed again (on a new issue of the
    period, or as adjustments on the next invoice)."""
    invoice, customer = await service.move(session, number, InvoiceStatus.VOID, utcnow())
    return invoice_out(invoice, customer)


@router.get("/statements")
async def get_statements(
    session: Session,
    state: State,
    caller: Caller,
    period: PeriodQuery = None,
    operator: Annotated[str | None, filter_by("Of this operator (a name)")] = None,
) -> list[StatementOut]:
    """Operators' earnings of a period (default: this month) by site, node and model: an
    operator's own; the platform's, any operator's or all that earned."""
    return await statements.statements(
        session, state.line_providers, _period(period), caller.scope, operator
    )


@router.get("/payouts", response_class=Response)
async def payouts(session: Session, caller: Caller, period: PeriodQuery = None) -> Response:
    """Each operator's payout of a period's issued invoices, as CSV."""
    asked = _period(period)
    text = await statements.payouts_csv(session, asked)
    disposition = f'attachment; filename="payouts-{asked}.csv"'
    return Response(text, media_type=CSV, headers={"content-disposition": disposition})


@router.get("/ledger")
async def ledger(session: Session, caller: Caller, period: PeriodQuery = None) -> LedgerOut:
    """A period's issued invoices against where their money went; the difference is 0."""
    return await statements.ledger_of(session, _period(period))


@router.put("/organizations/{name}/share")
async def set_share(name: PathName, body: ShareSet, session: Session, caller: Caller) -> ShareOut:
    """Set an operator's share of what its nodes earn (basis points), for invoices issued from
    now on."""
    return await statements.set_share(session, name, body.share_bps)
