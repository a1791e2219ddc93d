"""Invoices, operator statements, payouts and the ledger, as the REST API shows them.

Money is `Decimal` USD, written in JSON as a string ("12.34"), never a float: amounts billed are
whole cents (each line rounded once, half to even), exact amounts and unit prices keep every
digit ("0.0000005" USD a token).
"""

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field, PlainSerializer, StringConstraints

from hashgrid.billing.lines import LineKind
from hashgrid.contracts.api.common import Name
from hashgrid.contracts.states import InvoiceStatus

# A USD amount in a JSON string, every digit as held.
Usd = Annotated[Decimal, PlainSerializer(lambda d: f"{d:f}", return_type=str)]
# A billing period: the UTC calendar month, `YYYY-MM`, of the years 2000 to 2100 (as every time
# the API takes: contracts/api/common.py).
PERIOD_PATTERN = r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])$"
PeriodText = Annotated[str, StringConstraints(pattern=PERIOD_PATTERN)]
# An invoice's number, given when it is issued: `HG-<year issued>-<sequence>`.
NUMBER_PATTERN = r"^HG-\d{4}-\d{6,}$"
NUMBER_LEN = 20


class InvoiceIssue(BaseModel):
    """Issue a customer's invoice of an ended period: its records not yet invoiced are billed."""

    customer: Name
    period: PeriodText


class InvoiceLineOut(BaseModel):
    kind: LineKind
    description: str
    model: str | None = None
    tier: str | None = None
    ref: str | None = None  # an adjustment's period (YYYY-MM), a contract line's contract
    quantity: int  # tokens, or replica-hours
    unit: str
    unit_price_usd: Usd  # per unit, exact
    amount_usd: Usd  # exact: quantity times the unit price
    billed_usd: Usd  # rounded once, half to even, to the cent: what the totals add


class InvoiceOut(BaseModel):
    """An invoice without its lines (as a list shows it)."""

    number: str | None = Field(None, description="Given at issue; a draft has none")
    customer: str  # the customer organization's name
    period: PeriodText
    status: InvoiceStatus
    issued_at: datetime | None = None
    paid_at: datetime | None = None
    voided_at: datetime | None = None
    subtotal_usd: Usd  # the lines that charge: usage, adjustments, contracts
    credits_usd: Usd  # what credit lines give back
    total_usd: Usd  # subtotal less credits: what is owed
    unpriced_records: int = Field(
        0, description="A draft's records no price covered: it cannot be issued until priced"
    )


class InvoiceDetail(InvoiceOut):
    lines: list[InvoiceLineOut]


class LineDifference(BaseModel):
    """One line of an invoice as stored and as recomputed from its records (0 if absent)."""

    kind: LineKind
    description: str
    stored_usd: Usd
    recomputed_usd: Usd
    difference_cents: int  # recomputed less stored


class Recomputation(BaseModel):
    """An issued invoice next to its lines computed afresh from the usage records it bills (and
    its contract and credit lines as stored): every difference must be 0."""

    number: str
    stored_total_usd: Usd
    recomputed_total_usd: Usd
    difference_cents: int
    lines: list[LineDifference]


class EarningsPart(BaseModel):
    """What one site, node or model (`name`; null: none) earned an operator, after its share."""

    name: str | None
    earned_usd: Usd


class EarningsRow(BaseModel):
    site: str | None
    node: str
    model: str | None
    earned_usd: Usd


class StatementOut(BaseModel):
    """An operator's earnings of one period: its share of the invoice lines its nodes served,
    less the credits its nodes caused. `final`: from issued invoices alone; otherwise it holds
    the live drafts of customers not yet invoiced for the period."""

    operator: str
    period: PeriodText
    final: bool
    share_bps: int  # the operator's share now (issued invoices keep the share they were split at)
    earned_usd: Usd
    credits_usd: Usd
    net_usd: Usd  # earned less credits: what is paid out
    by_site: list[EarningsPart]
    by_node: list[EarningsPart]
    by_model: list[EarningsPart]
    rows: list[EarningsRow]


class LedgerOut(BaseModel):
    """A period's issued invoices and where their money went: `difference_usd` = gross -
    (earnings + platform share + credits), 0 when the ledger balances."""

    period: PeriodText
    invoices: int
    gross_usd: Usd  # the invoices' subtotals, as stored
    credits_usd: Usd  # the invoices' credits, as stored
    total_usd: Usd  # what the invoices bill: gross less credits
    earnings_usd: Usd  # paid out to operators: their shares less the credits charged to them
    platform_share_usd: Usd  # the platform's: its shares less the credits it bears
    difference_usd: Usd


class ShareSet(BaseModel):
    """An operator's share of what its nodes earn, in basis points (7000: 70%)."""

    share_bps: int = Field(ge=0, le=10_000)


class ShareOut(BaseModel):
    operator: str
    share_bps: int
