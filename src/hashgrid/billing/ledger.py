"""Who earned each cent of the invoices: operators, the platform, and the credits given back.

Each line's cents (rounded once, on the invoice) are split among the nodes of its `sources` by
the largest remainder on their exact pico-dollar parts, so the parts add up to the line's cents
exactly, never one cent more or less, and none is negative where the line is not. A node's part
goes to its operator at the operator's share (basis points, 7000 = 70% by default; rounded half
to even) and the rest to the platform; a part with no operator's node (an external endpoint, an
unknown node) is the platform's. A credit line is charged in full to the operator of the node
that caused it, or to the platform where it names none.

So, per period, by construction of the figures and not by a plug:
    gross (the lines that charge) = operators' net earnings + platform's net share + credits,
where an operator's net earnings are its share of the gross less the credits charged to it.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from hashgrid.billing.lines import Line, LineKind, Source
from hashgrid.billing.money import BPS, half_even

DEFAULT_SHARE_BPS = 7000  # an operator's share of what its nodes earn: 70%


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose a node is, when its lines are split: its operator and site, the operator's share."""

    operator: str
    site: str | None
    share_bps: int = DEFAULT_SHARE_BPS


Cell = tuple[str | None, str, str | None]  # site, node, model: what a statement is broken down by


@dataclass
class Earnings:
    """One operator's part of a period's invoices, in cents."""

    earned: dict[Cell, int] = field(default_factory=lambda: defaultdict(int))
    charged: dict[Cell, int] = field(default_factory=lambda: defaultdict(int))  # credits

    @property
    def gross(self) -> int:
        return sum(self.earned.values())

    @property
    def credits(self) -> int:
        return sum(self.charged.values())

    @property
    def net(self) -> int:
        """What it is paid out: its share less the credits its nodes caused."""
        return self.gross - self.credits

    def by(self, part: int) -> dict[str | None, int]:
        """Its earnings summed by site (0), node (1) or model (2)."""
        summed: dict[str | None, int] = defaultdict(int)
        for cell, amount in self.earned.items():
            summed[cell[part]] += amount
        return dict(summed)


@dataclass
class Ledger:
    """A period's invoices split between operators and the platform, in cents."""

    gross: int = 0  # the lines that charge
    credits: int = 0  # what credit lines give back (positive)
    platform_gross: int = 0  # the platform's share of the gross
    platform_credits: int = 0  # the credits it bears
    operators: dict[str, Earnings] = field(default_factory=lambda: defaultdict(Earnings))

    @property
    def earnings(self) -> int:
        """What the operators are paid out, together."""
        return sum(e.net for e in self.operators.values())

    @property
    def platform_share(self) -> int:
        return self.platform_gross - self.platform_credits

    @property
    def difference(self) -> int:
        """gross - (earnings + platform share + credits): 0 when the ledger balances."""
        return self.gross - (self.earnings + self.platform_share + self.credits)


def allocate(total: int, parts: Sequence[int]) -> list[int]:
    """`total` cents split in proportion to `parts` (exact amounts, all of `total`'s sign or 0)
    by the largest remainder: the results add up to `total`, ties go to the earlier part."""
    whole = sum(parts)
    if whole == 0:
        if total != 0:
            raise ValueError("cannot split a nonzero amount over parts that add up to 0")
        return [0] * len(parts)
    sign = -1 if whole < 0 else 1
    if any(p * sign < 0 for p in parts) or total * sign < 0:
        raise ValueError("the parts and the total must all have one sign")
    total, parts, whole = total * sign, [p * sign for p in parts], whole * sign
    floors = [total * p // whole for p in parts]
    remainders = [total * p % whole for p in parts]
    short = total - sum(floors)
    for i in sorted(range(len(parts)), key=lambda i: -remainders[i])[:short]:
        floors[i] += 1
    return [f * sign for f in floors]


def operator_part(amount: int, share_bps: int) -> int:
    """An operator's share of `amount` cents, half to even; the platform keeps the rest."""
    return half_even(amount * share_bps, BPS)


def node_parts(line: Line) -> list[tuple[str | None, int]]:
    """The line's cents per source node; a line naming no source is all the platform's."""
    sources: Sequence[Source] = line.sources or ((None, line.amount_pico),)
    if sum(amount for _, amount in sources) != line.amount_pico:
        raise ValueError(f"the sources of {line.description!r} do not add up to its amount")
    split = allocate(line.cents, [amount for _, amount in sources])
    return [(node, part) for (node, _), part in zip(sources, split, strict=True)]


def split(billed: Iterable[tuple[Sequence[Line], Mapping[str, Owner]]]) -> Ledger:
    """The ledger of invoices given as their lines and the owners of their nodes (an issued
    invoice's as they were when it was issued)."""
    ledger = Ledger()
    for lines, owners in billed:
        for line in lines:
            credit = line.kind == LineKind.CREDIT
            if credit:
                ledger.credits -= line.cents
            else:
                ledger.gross += line.cents
            for node, part in node_parts(line):
                owner = None if node is None else owners.get(node)
                if node is None or owner is None:
                    if credit:
                        ledger.platform_credits -= part
                    else:
                        ledger.platform_gross += part
                    continue
                earnings = ledger.operators[owner.operator]
                cell = (owner.site, node, line.model)
                if credit:
                    earnings.charged[cell] -= part
                else:
                    operator = operator_part(part, owner.share_bps)
                    earnings.earned[cell] += operator
                    ledger.platform_gross += part - operator
    return ledger
