"""An invoice line and whom its money came from: what invoices, contracts and operator
statements have in common.

A line's `amount_pico` is exact; it is rounded once, to `cents`, when the line is shown or
issued. `sources` say which node earned which part of the exact amount (None: no operator's
node, e.g. an external endpoint or a credit the platform bears), so operator statements are
cut from the same lines the customer is invoiced for and the ledger balances by construction of
the figures, not by a plug.
"""

from dataclasses import dataclass
from enum import StrEnum

from hashgrid.billing.money import cents


class LineKind(StrEnum):
    USAGE = "usage"  # tokens of the invoice's period
    ADJUSTMENT = "adjustment"  # tokens of an earlier, already invoiced period, stored late
    CONTRACT = "contract"  # reserved replica-hours of a compute contract
    CREDIT = "credit"  # an SLA credit (negative)


Source = tuple[str | None, int]  # node id (None: no operator's node), exact pico-dollars


@dataclass(frozen=True, slots=True)
class Line:
    kind: LineKind
    description: str
    quantity: int  # tokens, or replica-hours
    unit: str  # "prompt tokens", "cached prompt tokens", "completion tokens", "replica-hours"
    unit_price_pico: int  # per token, or per replica-hour; credits: the hour's price
    amount_pico: int  # exact; negative for a credit
    model: str | None = None
    tier: str | None = None
    ref: str | None = None  # the contract id, or the earlier period (YYYY-MM) adjusted
    sources: tuple[Source, ...] = ()

    @property
    def cents(self) -> int:
        return cents(self.amount_pico)
