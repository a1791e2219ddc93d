"""An invoice's lines and totals, built from usage summed per price: pure, so the draft, the
issued invoice and its recomputation are one function of the same records.

The caller sums a customer's usage records per model, tier, unit prices, serving node and the
period the record started in (`UsageSum`); `usage_lines` turns the sums into one line per model
x tier x token kind x unit price, each line's amount split by node in its `sources`. Records of
an earlier period than the invoice's were stored after that period was invoiced (a gateway's
spool drained late): they become ADJUSTMENT lines naming their period, so an issued invoice is
never changed by them. Contract and credit lines come from elsewhere (compute contracts) and are
added as given. Each line is rounded once, half to even, to the cent (`Line.cents`); the totals
add the rounded lines, so what the customer reads adds up.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hashgrid.billing.lines import Line, LineKind, Source
from hashgrid.billing.money import UnitPrices
from hashgrid.billing.periods import Period

# How a token kind is named on a line, and which unit price it is charged at.
PROMPT = "prompt tokens"
CACHED = "cached prompt tokens"
COMPLETION = "completion tokens"
# Lines are listed in this order of kinds, then by what tells them apart.
KIND_ORDER = {kind: i for i, kind in enumerate(LineKind)}
UNIT_ORDER = {PROMPT: 0, CACHED: 1, COMPLETION: 2}


@dataclass(frozen=True, slots=True)
class UsageSum:
    """A customer's usage records summed over one group: the same model, tier and unit prices,
    served by the same node (None: no operator's node), started in the same period."""

    model: str
    tier: str | None
    prices: UnitPrices
    node_id: str | None
    period: Period
    prompt_tokens: int  # all prompt tokens, the cached ones included
    cached_tokens: int  # the part of `prompt_tokens` the engine had cached
    completion_tokens: int

    def quantities(self) -> tuple[tuple[str, int, int], ...]:
        """(unit, tokens, unit price) for each token kind."""
        cached = min(self.cached_tokens, self.prompt_tokens)
        return (
            (PROMPT, self.prompt_tokens - cached, self.prices.prompt),
            (CACHED, cached, self.prices.cached),
            (COMPLETION, self.completion_tokens, self.prices.completion),
        )


@dataclass(frozen=True, slots=True)
class Totals:
    """An invoice's totals in cents: `subtotal` adds the lines that charge (usage, adjustments,
    contracts), `credits` what credit lines give back (a positive number), `total` is what is
    owed."""

    subtotal: int
    credits: int

    @property
    def total(self) -> int:
        return self.subtotal - self.credits

    @classmethod
    def of(cls, lines: Iterable[Line]) -> "Totals":
        subtotal = credits = 0
        for line in lines:
            if line.kind == LineKind.CREDIT:
                credits -= line.cents
            else:
                subtotal += line.cents
        return cls(subtotal, credits)


_Group = tuple[
    LineKind, str | None, str, str | None, str, int
]  # kind, ref, model, tier, unit, price


def usage_lines(period: Period, sums: Iterable[UsageSum]) -> list[Line]:
    """The usage and adjustment lines of `period`'s invoice from the sums of its records."""
    amounts: dict[_Group, dict[str | None, int]] = defaultdict(lambda: defaultdict(int))
    quantities: dict[_Group, int] = defaultdict(int)
    for s in sums:
        if s.period > period:
            raise ValueError(f"usage of {s.period} cannot be on the invoice of {period}")
        kind, ref = (
            (LineKind.USAGE, None) if s.period == period else (LineKind.ADJUSTMENT, str(s.period))
        )
        for unit, tokens, price in s.quantities():
            if tokens:
                group = (kind, ref, s.model, s.tier, unit, price)
                quantities[group] += tokens
                amounts[group][s.node_id] += tokens * price
    found = []
    for group, quantity in quantities.items():
        kind, ref, model, tier, unit, price = group
        found.append(
            Line(
                kind=kind,
                description=_describe(model, tier, unit, ref),
                quantity=quantity,
                unit=unit,
                unit_price_pico=price,
                amount_pico=quantity * price,
                model=model,
                tier=tier,
                ref=ref,
                sources=_sources(amounts[group]),
            )
        )
    return sorted(found, key=line_key)


def invoice_lines(
    period: Period, sums: Iterable[UsageSum], given: Sequence[Line] = ()
) -> list[Line]:
    """Every line of `period`'s invoice: usage and adjustments from `sums`, then the contract
    and credit lines `given`, in the order they are shown."""
    return sorted([*usage_lines(period, sums), *given], key=line_key)


def line_key(line: Line) -> tuple[int, str, str, str, int, str, int, str]:
    """What orders an invoice's lines, and tells two lines apart when an invoice is compared
    with its recomputation."""
    return (
        KIND_ORDER[line.kind],
        line.ref or "",
        line.model or "",
        line.tier or "",
        UNIT_ORDER.get(line.unit, len(UNIT_ORDER)),
        line.unit,
        line.unit_price_pico,
        line.description,
    )


def _sources(by_node: dict[str | None, int]) -> tuple[Source, ...]:
    """Each node's part, in node order (no operator's node last)."""
    return tuple(sorted(by_node.items(), key=lambda item: (item[0] is None, item[0] or "")))


def _describe(model: str, tier: str | None, unit: str, ref: str | None) -> str:
    what = f"{model} ({tier}), {unit}" if tier else f"{model}, {unit}"
    return f"{what}, stored late for {ref}" if ref else what
