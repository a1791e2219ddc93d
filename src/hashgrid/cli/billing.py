"""`hashgrid invoices ...`, `hashgrid earnings` and `hashgrid payouts ...`."""

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import typer

from hashgrid.billing.periods import Period
from hashgrid.cli.connection import client
from hashgrid.cli.output import JsonOption, console, emit_json, fail, table
from hashgrid.contracts.api.billing import InvoiceDetail, InvoiceIssue, ShareSet
from hashgrid.contracts.states import InvoiceStatus

invoices_app = typer.Typer(help="Customers' monthly invoices.", no_args_is_help=True)
payouts_app = typer.Typer(help="Operators' payouts.", no_args_is_help=True)

PeriodOption = typer.Option(None, "--period", help="YYYY-MM, a UTC month (default: this one).")


@invoices_app.command("list")
def list_invoices(
    ctx: typer.Context,
    period: str | None = typer.Option(None, help="Only of this month (YYYY-MM)."),
    customer: str | None = typer.Option(None, help="Only of this customer (platform admin)."),
    status: InvoiceStatus | None = typer.Option(None, help="Only in this status."),
    as_json: bool = JsonOption,
) -> None:
    """The issued invoices you may read, newest first."""
    with client(ctx) as c:
        invoices = c.list_invoices(period, customer, status)
    if as_json:
        return emit_json(invoices)
    rows = [
        (i.number, i.customer, i.period, i.status.value, f"${i.total_usd:,}", i.issued_at)
        for i in invoices
    ]
    table("invoices", ["number", "customer", "period", "status", "total", "issued"], rows)


@invoices_app.command("show")
def show_invoice(
    ctx: typer.Context,
    number: str | None = typer.Argument(
        None, help="The invoice's number; without it, the live draft of --customer's --period."
    ),
    customer: str | None = typer.Option(None, help="The draft's customer (default: yours)."),
    period: str | None = PeriodOption,
    as_json: bool = JsonOption,
) -> None:
    """An invoice and its lines, or a draft as it would be issued now."""
    with client(ctx) as c:
        invoice = c.get_invoice(number) if number else c.draft_invoice(customer, period)
    if as_json:
        return emit_json(invoice)
    _print(invoice)


def _print(invoice: InvoiceDetail) -> None:
    rows = [
        (
            line.description,
            f"{line.quantity:,}",
            f"${line.unit_price_usd:f}",
            f"${line.billed_usd:,}",
        )
        for line in invoice.lines
    ]
    title = (
        f"invoice {invoice.number or '(draft)'}: {invoice.customer}, {invoice.period}, "
        f"{invoice.status.value}"
    )
    table(title, ["line", "quantity", "unit price", "amount"], rows)
    console.print(
        f"subtotal ${invoice.subtotal_usd:,}  credits ${invoice.credits_usd:,}  "
        f"[bold]total ${invoice.total_usd:,}[/bold]",
        highlight=False,
    )
    if invoice.unpriced_records:
        console.print(
            f"[yellow]{invoice.unpriced_records} usage records have no price: the invoice "
            "cannot be issued until the price book covers them[/yellow]"
        )


@invoices_app.command("download")
def download_invoice(
    ctx: typer.Context,
    number: str,
    file_format: str = typer.Option("pdf", "--format", help="pdf or csv."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Default: NUMBER.FORMAT."),
) -> None:
    """Save an invoice as a PDF or CSV file."""
    if file_format not in ("pdf", "csv"):
        raise typer.BadParameter("pdf or csv", param_hint="--format")
    with client(ctx) as c:
        content = c.invoice_file(number, file_format)
    path = output or Path(f"{number}.{file_format}")
    path.write_bytes(content)
    console.print(f"saved {path}")


@invoices_app.command("issue")
def issue_invoice(
    ctx: typer.Context,
    customer: str,
    period: str | None = typer.Option(None, help="YYYY-MM (default: last month)."),
    as_json: bool = JsonOption,
) -> None:
    """(platform admin) Issue a customer's invoice of an ended month."""
    month = period or str(Period.of(datetime.now(UTC)).previous())
    with client(ctx) as c:
        invoice = c.issue_invoice(InvoiceIssue(customer=customer, period=month))
    if as_json:
        return emit_json(invoice)
    console.print(f"issued {invoice.number}: {customer}, {month}, ${invoice.total_usd:,}")


@invoices_app.command("pay")
def pay_invoice(ctx: typer.Context, number: str) -> None:
    """(platform admin) Record an invoice as paid."""
    with client(ctx) as c:
        invoice = c.pay_invoice(number)
    console.print(f"{invoice.number} is {invoice.status.value}")


@invoices_app.command("void")
def void_invoice(ctx: typer.Context, number: str) -> None:
    """(platform admin) Cancel an issued invoice: its usage is billed again."""
    with client(ctx) as c:
        invoice = c.void_invoice(number)
    console.print(f"{invoice.number} is {invoice.status.value}")


def earnings(
    ctx: typer.Context,
    period: str | None = PeriodOption,
    operator: str | None = typer.Option(None, help="Of this operator (platform admin)."),
    as_json: bool = JsonOption,
) -> None:
    """Operator earnings of a month, by site, node and model (yours, as an operator)."""
    with client(ctx) as c:
        found = c.statements(period, operator)
    if as_json:
        return emit_json(found)
    for s in found:
        state = "final" if s.final else "live: not every customer invoiced yet"
        rows = [(r.site, r.node, r.model, f"${r.earned_usd:,}") for r in s.rows]
        table(f"{s.operator}, {s.period} ({state})", ["site", "node", "model", "earned"], rows)
        console.print(
            f"earned ${s.earned_usd:,} at {s.share_bps / 100:g}%  credits ${s.credits_usd:,}  "
            f"[bold]net ${s.net_usd:,}[/bold]",
            highlight=False,
        )


@payouts_app.command("export")
def export_payouts(
    ctx: typer.Context,
    period: str | None = typer.Option(None, help="YYYY-MM (default: last month)."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Default: standard output."),
) -> None:
    """(platform admin) Each operator's payout of a month's issued invoices, as CSV."""
    month = period or str(Period.of(datetime.now(UTC)).previous())
    with client(ctx) as c:
        text = c.payouts_csv(month)
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text)
    console.print(f"saved {output}")


@payouts_app.command("share")
def set_share(
    ctx: typer.Context,
    operator: str,
    percent: Decimal = typer.Argument(..., help="e.g. 70 or 72.5 (at most 2 decimals)."),
) -> None:
    """(platform admin) An operator's share of what its nodes earn, from the next invoice on."""
    bps = percent * 100
    if not 0 <= bps <= 10_000 or bps != bps.to_integral_value():
        raise fail("the share is a percent from 0 to 100 with at most 2 decimals")
    with client(ctx) as c:
        share = c.set_operator_share(operator, ShareSet(share_bps=int(bps)))
    console.print(f"{share.operator} earns {share.share_bps / 100:g}% of what its nodes serve")
