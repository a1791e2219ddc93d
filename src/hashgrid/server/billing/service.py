"""A customer's invoices: the live draft, issuing (numbered, stored, immutable), paying and
voiding, and the recomputation that shows an issued invoice equals its records to the cent.

Issuing marks the records first and computes the lines from the marked ones, in one
transaction: a record stored meanwhile by a gateway is either marked, and so in the lines, or
not marked, and so left for the next invoice (as an adjustment if its period is this one). An
issued invoice's records name it (`usage_records.invoice_id`); voiding frees them to be billed
again.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.billing.invoices import Totals, invoice_lines, line_key
from hashgrid.billing.lines import Line, LineKind
from hashgrid.billing.money import cents_usd
from hashgrid.billing.periods import Period
from hashgrid.contracts.api.billing import LineDifference, Recomputation
from hashgrid.contracts.api.organizations import OrgKind
from hashgrid.contracts.states import InvoiceStatus, invoice_can_move
from hashgrid.server import pages
from hashgrid.server.billing import sums
from hashgrid.server.billing.owners import line_row, owners_now, stored_line
from hashgrid.server.billing.providers import LineProvider, provided
from hashgrid.server.billing.tables import Invoice, InvoiceLineRow, InvoiceNumber
from hashgrid.server.db.base import new_id
from hashgrid.server.errors import Conflict, Invalid, NotFound
from hashgrid.server.organizations import service as organizations
from hashgrid.server.organizations.tables import Organization
from hashgrid.server.usage.tables import UsageRecordRow

# What an issued invoice holds as given, not recomputed from records.
GIVEN = frozenset({LineKind.CONTRACT, LineKind.CREDIT})
LIVE = Invoice.status != InvoiceStatus.VOID.value


@dataclass(frozen=True)
class Draft:
    """A customer's invoice of a period as it would be issued now."""

    customer: Organization
    period: Period
    lines: list[Line]
    unpriced: int  # records no price covered: it cannot be issued while any


def waiting(period: Period) -> Select[Organization]:
    """The customers with no invoice of `period`, or of a later one, standing: those whose
    `period` invoice may still be issued."""
    standing = select(Invoice.customer_id).where(Invoice.period >= str(period), LIVE)
    return select(Organization).where(
        Organization.kind == OrgKind.CUSTOMER.value, Organization.id.not_in(standing)
    )


async def customer_of(session: AsyncSession, name: str | None, scope: str | None) -> Organization:
    """The customer called `name` if the caller sees it; a customer's own when `name` is None."""
    if name is None:
        if scope is None:
            raise Invalid("customer: name the customer whose invoice to read")
        return await organizations.get_by_id(session, scope)
    org = await organizations.get_visible(session, name, scope)
    if org.kind != OrgKind.CUSTOMER:
        raise Invalid(f"organization {name!r} is a {org.kind}, not a customer")
    return org


async def draft(
    session: AsyncSession,
    providers: Sequence[LineProvider],
    customer: Organization,
    period: Period,
) -> Draft:
    """`customer`'s invoice of `period` as it stands: its records not yet invoiced that started
    before the period's end (those of earlier periods as adjustments), and the providers' lines."""
    free = sums.free(customer.id, period)
    found = await sums.usage_sums(session, free)
    given = await provided(providers, session, customer.id, period)
    lines = invoice_lines(period, found.get(customer.id, []), given)
    return Draft(customer, period, lines, await sums.unpriced(session, free))


async def issue(
    session: AsyncSession,
    providers: Sequence[LineProvider],
    customer_name: str,
    period: Period,
    now: datetime,
) -> Invoice:
    """Issue `customer_name`'s invoice of `period`, which must have ended; refused (409) while a
    record it would bill is unpriced, or when an invoice of this or a later period stands."""
    customer = await organizations.get(session, customer_name, OrgKind.CUSTOMER)
    if period.end > now:
        raise Conflict(f"{period} has not ended: its invoices are issued after it ends")
    number = await _next_number(session, now.year)  # the lock every issue takes first
    standing = await session.scalar(
        select(Invoice.number)
        .where(Invoice.customer_id == customer.id, Invoice.period >= str(period), LIVE)
        .order_by(Invoice.period.desc())
        .limit(1)
    )
    if standing is not None:
        await session.rollback()
        raise Conflict(
            f"invoice {standing} of {customer_name} stands for {period} or later: records not "
            "on it go on the next invoice"
        )
    invoice = Invoice(
        id=new_id(),
        number=number,
        customer_id=customer.id,
        period=str(period),
        status=InvoiceStatus.ISSUED.value,
        issued_at=now,
        subtotal_cents=0,
        credits_cents=0,
        total_cents=0,
    )
    session.add(invoice)
    await session.flush()
    free = sums.free(customer.id, period)
    r = UsageRecordRow
    await session.execute(
        update(r)
        .where(free, r.priced.is_(True))
        .values(invoice_id=invoice.id)
        .execution_options(synchronize_session=False)
    )
    left = await sums.unpriced(session, free)
    if left:
        await session.rollback()
        raise Conflict(
            f"{left} usage records of {customer_name} up to {period} have no price: add the "
            "price-book entries that cover them, then issue"
        )
    found = await sums.usage_sums(session, r.invoice_id == invoice.id)
    given = await provided(providers, session, customer.id, period)
    lines = invoice_lines(period, found.get(customer.id, []), given)
    if not lines:
        await session.rollback()
        raise Conflict(f"{customer_name} has nothing to invoice for {period}")
    totals = Totals.of(lines)
    invoice.subtotal_cents, invoice.credits_cents = totals.subtotal, totals.credits
    invoice.total_cents = totals.total
    owners = await owners_now(session, lines)
    for position, line in enumerate(lines):
        row = line_row(line, position, owners)
        row.invoice_id = invoice.id
        session.add(row)
    await session.commit()
    return invoice


async def _next_number(session: AsyncSession, year: int) -> str:
    """The next invoice number of `year`. Its counter row stays locked until the issue commits
    or rolls back, so issues are numbered in order, without gaps, one at a time."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    await session.execute(insert(InvoiceNumber).values(year=year, last=0).on_conflict_do_nothing())
    last = await session.scalar(
        update(InvoiceNumber)
        .where(InvoiceNumber.year == year)
        .values(last=InvoiceNumber.last + 1)
        .returning(InvoiceNumber.last)
    )
    return f"HG-{year}-{last:06d}"


async def move(
    session: AsyncSession, number: str, to: InvoiceStatus, now: datetime
) -> tuple[Invoice, str]:
    """Mark an invoice paid or void (its records freed, to be billed again)."""
    invoice, customer = await find(session, number, None)
    current = InvoiceStatus(invoice.status)
    if not invoice_can_move(current, to):
        raise Conflict(f"invoice {number} is {current}: it cannot become {to}")
    invoice.status = to.value
    if to == InvoiceStatus.PAID:
        invoice.paid_at = now
    else:
        invoice.voided_at = now
        r = UsageRecordRow
        await session.execute(
            update(r)
            .where(r.invoice_id == invoice.id)
            .values(invoice_id=None)
            .execution_options(synchronize_session=False)
        )
    await session.commit()
    return invoice, customer


def _visible(scope: str | None) -> ColumnElement[bool]:
    return true() if scope is None else Invoice.customer_id == scope


def _with_customer() -> Select[Invoice, str]:
    return select(Invoice, Organization.name).join(
        Organization, Organization.id == Invoice.customer_id
    )


async def find(session: AsyncSession, number: str, scope: str | None) -> tuple[Invoice, str]:
    """The invoice numbered `number` and its customer's name, if the caller sees it."""
    found = (
        await session.execute(_with_customer().where(Invoice.number == number, _visible(scope)))
    ).first()
    if found is None:
        raise NotFound(f"no invoice {number!r}")
    return found[0], found[1]


async def stored_lines(session: AsyncSession, invoice: Invoice) -> list[InvoiceLineRow]:
    rows = await session.scalars(
        select(InvoiceLineRow)
        .where(InvoiceLineRow.invoice_id == invoice.id)
        .order_by(InvoiceLineRow.position)
    )
    return list(rows.all())


ORDER = pages.Order(pages.By(Invoice.number, descending=True))


async def listed(
    session: AsyncSession,
    scope: str | None,
    cursor: str | None,
    limit: int,
    period: Period | None = None,
    customer: str | None = None,
    status: InvoiceStatus | None = None,
) -> pages.Items[tuple[Invoice, str]]:
    """A page of the invoices the caller sees, newest number first."""
    query = _with_customer().where(_visible(scope))
    if period is not None:
        query = query.where(Invoice.period == str(period))
    if customer is not None:
        query = query.where(Organization.name == customer)
    if status is not None:
        query = query.where(Invoice.status == status.value)
    found = await pages.rows(session, query, ORDER, cursor, limit)
    return pages.Items([(row[0], row[1]) for row in found.items], found.next_cursor)


async def recompute(session: AsyncSession, invoice: Invoice) -> Recomputation:
    """The invoice's lines computed afresh from the records it bills and its given lines as
    stored, next to the stored lines: per line and in total, the difference in cents."""
    if invoice.status == InvoiceStatus.VOID:
        raise Conflict(f"invoice {invoice.number} is void: it bills no records")
    stored = [stored_line(row) for row in await stored_lines(session, invoice)]
    found = await sums.usage_sums(session, UsageRecordRow.invoice_id == invoice.id)
    period = Period.parse(invoice.period)
    given = [line for line in stored if line.kind in GIVEN]
    fresh = invoice_lines(period, found.get(invoice.customer_id, []), given)
    was, now = _cents_by_key(stored), _cents_by_key(fresh)
    described = {line_key(line): line for line in [*stored, *fresh]}
    lines = [
        LineDifference(
            kind=described[key].kind,
            description=described[key].description,
            stored_usd=cents_usd(was[key]),
            recomputed_usd=cents_usd(now[key]),
            difference_cents=now[key] - was[key],
        )
        for key in sorted(described)
    ]
    recomputed = Totals.of(fresh).total
    return Recomputation(
        number=invoice.number,
        stored_total_usd=cents_usd(invoice.total_cents),
        recomputed_total_usd=cents_usd(recomputed),
        difference_cents=recomputed - invoice.total_cents,
        lines=lines,
    )


def _cents_by_key(lines: Sequence[Line]) -> Counter[tuple[object, ...]]:
    found: Counter[tuple[object, ...]] = Counter()
    for line in lines:
        found[line_key(line)] += line.cents
    return found
