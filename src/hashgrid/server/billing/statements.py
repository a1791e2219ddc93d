"""Operator statements, payouts and the ledger of a period: the lines of its invoices split by
`hashgrid.billing.ledger` between the operators whose nodes earned them and the platform.

Issued invoices are split with the owners their lines were stored with (the operator's share
then), so an issued period's figures never change. A statement of a period not wholly invoiced
also holds the live drafts of the customers not invoiced for it yet (`final` false); payouts and
the ledger hold issued invoices only.
"""

import csv
import io
from collections import defaultdict
from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.billing.invoices import invoice_lines
from hashgrid.billing.ledger import Earnings, Ledger, Owner, split
from hashgrid.billing.lines import Line
from hashgrid.billing.money import cents_usd
from hashgrid.billing.periods import Period
from hashgrid.contracts.api.billing import (
    EarningsPart,
    EarningsRow,
    LedgerOut,
    ShareOut,
    StatementOut,
)
from hashgrid.contracts.api.organizations import OrgKind
from hashgrid.contracts.states import InvoiceStatus
from hashgrid.server.billing import service, sums
from hashgrid.server.billing.owners import owners_at_issue, owners_now, stored_line
from hashgrid.server.billing.providers import LineProvider, provided
from hashgrid.server.billing.tables import Invoice, InvoiceLineRow
from hashgrid.server.errors import NotFound
from hashgrid.server.nodes.tables import Node
from hashgrid.server.organizations import service as organizations
from hashgrid.server.organizations.tables import Organization
from hashgrid.server.usage.tables import UsageRecordRow

Billed = tuple[list[Line], Mapping[str, Owner]]
ISSUED = (InvoiceStatus.ISSUED.value, InvoiceStatus.PAID.value)


async def issued(session: AsyncSession, period: Period) -> tuple[list[Invoice], list[Billed]]:
    """The period's issued (and paid) invoices, and each one's lines with their owners."""
    invoices = list(
        (
            await session.scalars(
                select(Invoice).where(Invoice.period == str(period), Invoice.status.in_(ISSUED))
            )
        ).all()
    )
    rows: dict[str, list[InvoiceLineRow]] = defaultdict(list)
    found = await session.scalars(
        select(InvoiceLineRow)
        .where(InvoiceLineRow.invoice_id.in_([i.id for i in invoices]))
        .order_by(InvoiceLineRow.invoice_id, InvoiceLineRow.position)
    )
    for row in found:
        rows[row.invoice_id].append(row)
    billed: list[Billed] = [
        ([stored_line(row) for row in rows[i.id]], owners_at_issue(rows[i.id])) for i in invoices
    ]
    return invoices, billed


async def drafts(
    session: AsyncSession, providers: Sequence[LineProvider], period: Period
) -> list[Billed]:
    """The live drafts of `period` of the customers with no invoice of it (or later) standing,
    with their nodes' owners now."""
    waiting = service.waiting(period).with_only_columns(Organization.id)
    customers = (await session.scalars(waiting)).all()
    found = await sums.usage_sums(
        session, sums.free(None, period) & UsageRecordRow.customer_id.in_(waiting)
    )
    billed: list[Billed] = []
    for customer in customers:
        given = await provided(providers, session, customer, period)
        lines = invoice_lines(period, found.get(customer, []), given)
        if lines:
            billed.append((lines, await owners_now(session, lines)))
    return billed


async def statements(
    session: AsyncSession,
    providers: Sequence[LineProvider],
    period: Period,
    scope: str | None,
    operator: str | None,
) -> list[StatementOut]:
    """The statements of `period` the caller sees: an operator its own, the platform any one
    (`operator`) or every operator's that earned in it."""
    wanted: Organization | None = None
    if operator is not None:
        wanted = await organizations.get_visible(session, operator, scope)
    elif scope is not None:
        wanted = await organizations.get_by_id(session, scope)
    if wanted is not None and wanted.kind != OrgKind.OPERATOR:
        raise NotFound(f"no operator {wanted.name!r}")
    _, billed = await issued(session, period)
    live = await drafts(session, providers, period)
    ledger = split([*billed, *live])
    operators = (
        [wanted]
        if wanted is not None
        else list(
            (
                await session.scalars(
                    select(Organization)
                    .where(Organization.id.in_(list(ledger.operators)))
                    .order_by(Organization.name)
                )
            ).all()
        )
    )
    names = await _node_names(session, ledger)
    return [
        _statement(org, period, not live, ledger.operators.get(org.id, Earnings()), names)
        for org in operators
    ]


async def _node_names(session: AsyncSession, ledger: Ledger) -> dict[str, str]:
    nodes = {cell[1] for e in ledger.operators.values() for cell in e.earned}
    rows = await session.execute(select(Node.id, Node.name).where(Node.id.in_(nodes)))
    return {node: name for node, name in rows}


def _statement(
    org: Organization, period: Period, final: bool, earnings: Earnings, names: dict[str, str]
) -> StatementOut:
    def parts(
        by: dict[str | None, int], named: Mapping[str, str] | None = None
    ) -> list[EarningsPart]:
        return [
            EarningsPart(name=named.get(k, k) if named and k else k, earned_usd=cents_usd(v))
            for k, v in sorted(by.items(), key=lambda item: (item[0] is None, item[0] or ""))
        ]

    return StatementOut(
        operator=org.name,
        period=str(period),
        final=final,
        share_bps=org.operator_share_bps,
        earned_usd=cents_usd(earnings.gross),
        credits_usd=cents_usd(earnings.credits),
        net_usd=cents_usd(earnings.net),
        by_site=parts(earnings.by(0)),
        by_node=parts(earnings.by(1), names),
        by_model=parts(earnings.by(2)),
        rows=[
            EarningsRow(
                site=site, node=names.get(node, node), model=model, earned_usd=cents_usd(amount)
            )
            for (site, node, model), amount in sorted(
                earnings.earned.items(), key=lambda item: tuple(str(v) for v in item[0])
            )
        ],
    )


async def payouts_csv(session: AsyncSession, period: Period) -> str:
    """One row per operator paid from the period's issued invoices: its share earned, the
    credits charged to it, and the payout (earned less credits)."""
    _, billed = await issued(session, period)
    ledger = split(billed)
    names = await organizations.names_of(session, ledger.operators)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["period", "operator", "earned_usd", "credits_usd", "payout_usd"])
    for operator, earnings in sorted(ledger.operators.items(), key=lambda i: names[i[0]]):
        writer.writerow(
            [
                str(period),
                names[operator],
                cents_usd(earnings.gross),
                cents_usd(earnings.credits),
                cents_usd(earnings.net),
            ]
        )
    return out.getvalue()


async def ledger_of(session: AsyncSession, period: Period) -> LedgerOut:
    """The period's issued invoices, as stored, against where their lines' money went."""
    invoices, billed = await issued(session, period)
    ledger = split(billed)
    gross = sum(i.subtotal_cents for i in invoices)
    credits = sum(i.credits_cents for i in invoices)
    return LedgerOut(
        period=str(period),
        invoices=len(invoices),
        gross_usd=cents_usd(gross),
        credits_usd=cents_usd(credits),
        total_usd=cents_usd(sum(i.total_cents for i in invoices)),
        earnings_usd=cents_usd(ledger.earnings),
        platform_share_usd=cents_usd(ledger.platform_share),
        difference_usd=cents_usd(gross - (ledger.earnings + ledger.platform_share + credits)),
    )


async def set_share(session: AsyncSession, name: str, share_bps: int) -> ShareOut:
    """Set an operator's share of what its nodes earn, from the next invoice issued on."""
    org = await organizations.get(session, name, OrgKind.OPERATOR)
    org.operator_share_bps = share_bps
    await session.commit()
    return ShareOut(operator=org.name, share_bps=org.operator_share_bps)
