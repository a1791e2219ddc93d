"""Compute contracts as money: reserved replica-hours billed whether used or not, and SLA credits
for the hours that fell short. Pure: a contract's terms and its watched hours in, invoice lines
out.

A contract reserves `replicas` replicas of one model for a term of whole UTC hours at a price
per replica-hour. The control plane watches each hour of the term (`observe`, fed a `Sample` of
the contract's replicas every few seconds) and keeps per hour: the replicas reserved, the fewest
ready at once (`min_ready`), each node's ready replica-samples (`hosted`) and, for the sample
that set the minimum, where each missing replica was (`missed`). A missing replica is charged to
a node that let one down (failed it, or was lost or drained with it, this hour), else to a node
where one is starting, else to None: placed nowhere. An hour with `min_ready < reserved` missed
`reserved - min_ready` replica-hours.

From them, for a billing period (`lines`):
- one CONTRACT line: every reserved replica-hour of the term within the period that is over,
  times the price. Its `sources` split each hour's money between the nodes by the share of the
  hour they hosted a ready replica (ready replica-samples over the hour's samples); what no node
  hosted (a replica missing or starting, an hour nobody watched) has no source (None).
- one CREDIT line (negative, only when some hour fell short): each missed replica-hour times the
  price times `sla_credit_percent`. Its `sources` are the nodes whose replicas were missing, so
  the credit is charged to their operators, and None where no replica was placed at all (the
  platform's shortfall).

An hour nobody watched (no record: the control plane was down throughout) is billed with no
credit and earns no node anything: there is no evidence either way. A cancelled contract is
billed through the hour it was cancelled in; one cancelled before its start, not at all.
"""

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hashgrid.billing.lines import Line, LineKind, Source
from hashgrid.billing.money import PICO_PER_MICRO, MoneyError
from hashgrid.billing.periods import Period
from hashgrid.contracts.states import ContractStatus

HOUR = timedelta(hours=1)
UNIT = "replica-hours"


def whole_hour(t: datetime) -> bool:
    return t.tzinfo is not None and t.minute == t.second == t.microsecond == 0


def hour_of(t: datetime) -> datetime:
    """The start of the UTC hour holding `t`."""
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class Terms:
    """What a contract sells; checked on construction (a ValueError or MoneyError)."""

    id: str
    model: str  # the name clients call (its deployment's)
    replicas: int
    price_pico: int  # per replica-hour: a whole number of micro-dollars
    starts_at: datetime  # a whole UTC hour
    ends_at: datetime  # a whole UTC hour, after starts_at (exclusive)
    sla_credit_percent: int = 100  # of a missed replica-hour's price, credited
    cancelled_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError("a contract reserves one replica at least")
        if not (whole_hour(self.starts_at) and whole_hour(self.ends_at)):
            raise ValueError("a contract's term starts and ends on whole hours, with a zone")
        if self.ends_at <= self.starts_at:
            raise ValueError("a contract's term ends after it starts")
        if self.price_pico < 0 or self.price_pico % PICO_PER_MICRO:
            raise MoneyError("a price per replica-hour is a whole number of micro-dollars")
        if not 0 <= self.sla_credit_percent <= 100:
            raise ValueError("an SLA credit is 0 to 100 percent of the missed hours' price")

    @property
    def billed_until(self) -> datetime:
        """The end of what is billed: the term's end, or the end of the hour it was cancelled
        in (its start, for one cancelled before it: nothing billed)."""
        if self.cancelled_at is None:
            return self.ends_at
        cut = hour_of(self.cancelled_at) + HOUR
        return max(self.starts_at, min(self.ends_at, cut))

    def hours(self, period: Period, until: datetime) -> Iterator[datetime]:
        """The starts of the term's billed hours within `period` that are over by `until`."""
        start = max(self.starts_at, period.start)
        end = min(self.billed_until, period.end, hour_of(until))
        while start < end:
            yield start
            start += HOUR


def due_status(
    status: ContractStatus, starts_at: datetime, ends_at: datetime, now: datetime
) -> ContractStatus:
    """Where the clock has taken a contract by `now`, along its transitions (a contract the
    clock passed by while nobody watched walks pending -> active -> ended)."""
    if status == ContractStatus.PENDING and now >= starts_at:
        status = ContractStatus.ACTIVE
    if status == ContractStatus.ACTIVE and now >= ends_at:
        status = ContractStatus.ENDED
    return status


@dataclass(frozen=True, slots=True)
class Sample:
    """A contract's replicas at one moment, by node: ready ones (routable); ones the node let
    down (failed, or lost or drained with it, this hour); ones starting (placed, never ready)."""

    ready: Mapping[str, int] = field(default_factory=dict)
    down: Mapping[str, int] = field(default_factory=dict)
    starting: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Hour:
    """One watched hour of a contract (see the module docstring)."""

    hour: datetime
    reserved: int
    min_ready: int
    samples: int
    hosted: Mapping[str, int]  # node id -> ready replica-samples
    missed: Mapping[str | None, int]  # node id (None: not placed) -> replicas missing

    @property
    def missed_replicas(self) -> int:
        return max(0, self.reserved - self.min_ready)


def observe(hour: Hour | None, start: datetime, reserved: int, sample: Sample) -> Hour:
    """`hour` (None: the first sample of the hour starting at `start`) with `sample` counted.

    Ready replicas count up to `reserved` (a replica rolling over to a new generation may be
    ready twice for a moment), taken by node id; missing ones are charged to the nodes that let
    one down, then to those where one is starting (a replacement is not at fault for what it
    replaces), then to None.
    """
    hosted = _take(sample.ready, reserved)
    ready = sum(hosted.values())
    missed: Counter[str | None] = Counter()
    missing = reserved - ready
    for by_node in (sample.down, sample.starting):
        taken = _take(by_node, missing)
        missed.update(taken)
        missing -= sum(taken.values())
    if missing:
        missed[None] = missing
    if hour is None:
        return Hour(start, reserved, ready, 1, hosted, dict(missed))
    sums = Counter(hour.hosted)
    sums.update(hosted)
    lower = ready < hour.min_ready
    return Hour(
        hour.hour,
        reserved,
        ready if lower else hour.min_ready,
        hour.samples + 1,
        dict(sums),
        dict(missed) if lower else hour.missed,
    )


def _take(by_node: Mapping[str, int], most: int) -> dict[str, int]:
    """Up to `most` of the counts in `by_node`, taken in node id order."""
    taken: dict[str, int] = {}
    for node in sorted(by_node):
        n = min(by_node[node], most)
        if n > 0:
            taken[node] = n
            most -= n
    return taken


def lines(terms: Terms, hours: Iterable[Hour], period: Period, until: datetime) -> list[Line]:
    """The contract's CONTRACT line for `period`, and its CREDIT line if an hour fell short,
    counting the hours over by `until`; none when no hour of the term is billed yet."""
    billed = list(terms.hours(period, until))
    if not billed:
        return []
    watched = {h.hour: h for h in hours}
    price = terms.price_pico
    per_hour = terms.replicas * price
    credit_price = price * terms.sla_credit_percent // 100  # exact: price is whole micros
    earned: Counter[str | None] = Counter()
    credited: Counter[str | None] = Counter()
    missed = 0
    for start in billed:
        h = watched.get(start)
        if h is None or h.samples == 0:
            earned[None] += per_hour
            continue
        parts = {node: price * n // h.samples for node, n in h.hosted.items()}
        earned.update(parts)
        earned[None] += per_hour - sum(parts.values())
        for node, n in h.missed.items():
            credited[node] -= n * credit_price
        missed += h.missed_replicas
    quantity = len(billed) * terms.replicas
    found = [
        Line(
            LineKind.CONTRACT,
            f"{terms.model}: {terms.replicas} reserved replica(s), {len(billed)} h",
            quantity,
            UNIT,
            price,
            quantity * price,
            model=terms.model,
            tier="firm",
            ref=terms.id,
            sources=_sources(earned),
        )
    ]
    if missed:
        found.append(
            Line(
                LineKind.CREDIT,
                f"{terms.model}: SLA credit, {missed} replica-hour(s) missed at "
                f"{terms.sla_credit_percent}% of their price",
                missed,
                UNIT,
                price,
                -missed * credit_price,
                model=terms.model,
                tier="firm",
                ref=terms.id,
                sources=_sources(credited),
            )
        )
    return found


def _sources(amounts: Counter[str | None]) -> tuple[Source, ...]:
    """Nodes by id, then None; parts of 0 left out."""
    ordered = sorted(amounts.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
    return tuple((node, pico) for node, pico in ordered if pico)
