"""An invoice as a file: CSV (one row per line, then the totals) and PDF (fpdf2, pure Python).
Both are drawn from the API's shape of the invoice, so they show exactly what the API answers."""

import csv
import io
from decimal import Decimal

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from hashgrid.billing.invoices import CACHED, COMPLETION, PROMPT
from hashgrid.billing.money import format_cents
from hashgrid.contracts.api.billing import InvoiceDetail

TOKENS = frozenset({PROMPT, CACHED, COMPLETION})
COLUMNS = [
    "number",
    "period",
    "kind",
    "description",
    "model",
    "tier",
    "ref",
    "quantity",
    "unit",
    "unit_price_usd",
    "amount_usd",
    "billed_usd",
]


def invoice_csv(invoice: InvoiceDetail) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    head = [invoice.number or "draft", invoice.period]
    for line in invoice.lines:
        writer.writerow(
            [
                *head,
                line.kind.value,
                line.description,
                line.model or "",
                line.tier or "",
                line.ref or "",
                line.quantity,
                line.unit,
                f"{line.unit_price_usd:f}",
                f"{line.amount_usd:f}",
                f"{line.billed_usd:f}",
            ]
        )
    for name, amount in _totals(invoice):
        writer.writerow([*head, name, *[""] * (len(COLUMNS) - 4), f"{amount:f}"])
    return out.getvalue()


def _totals(invoice: InvoiceDetail) -> list[tuple[str, Decimal]]:
    return [
        ("subtotal", invoice.subtotal_usd),
        ("credits", -invoice.credits_usd),
        ("total", invoice.total_usd),
    ]


def _dollars(usd: Decimal) -> str:
    """A billed amount (whole cents) as `$1,234.56`."""
    return format_cents(int(usd * 100))


def _latin1(text: str) -> str:
    """The PDF's core font holds Latin-1 only: any other character is shown as `?`."""
    return text.encode("latin-1", "replace").decode("latin-1")


def _price(unit: str, usd: Decimal) -> str:
    """A token's price as a price sheet writes it (per million), any other unit's as it is."""
    if unit in TOKENS:
        return f"${(usd * 1_000_000).normalize():f} / 1M"
    return f"${usd.normalize():f}"


def invoice_pdf(invoice: InvoiceDetail) -> bytes:
    pdf = FPDF(orientation="landscape")
    pdf.set_title(_latin1(f"Invoice {invoice.number or 'draft'}"))
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    title = _latin1(f"Invoice {invoice.number or '(draft)'}")
    pdf.cell(0, 10, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", size=10)
    facts = [
        f"Customer: {invoice.customer}",
        f"Period: {invoice.period} (UTC)",
        f"Status: {invoice.status.value}",
    ]
    if invoice.issued_at is not None:
        facts.append(f"Issued: {invoice.issued_at:%Y-%m-%d %H:%M} UTC")
    for fact in facts:
        pdf.cell(0, 6, _latin1(fact), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    with pdf.table(
        col_widths=(120, 35, 40, 45, 30),
        text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"),
    ) as table:
        table.row(["Description", "Quantity", "Unit price", "Amount (exact)", "Amount"])
        for line in invoice.lines:
            table.row(
                [
                    _latin1(line.description),
                    f"{line.quantity:,} {'tokens' if line.unit in TOKENS else line.unit}",
                    _price(line.unit, line.unit_price_usd),
                    f"${line.amount_usd:f}",
                    _dollars(line.billed_usd),
                ]
            )
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 11)
    for name, amount in _totals(invoice):
        text = f"{name.capitalize()}: {_dollars(amount)}"
        pdf.cell(0, 7, text, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())
