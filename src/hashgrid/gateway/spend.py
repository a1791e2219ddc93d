"""What this gateway knows of each key's and customer's spend this month, for budgets.

The control plane's figures (the view's `SpendReport`) hold every usage record it stored. This
gateway's own spend gets there only once its record is shipped and a later view answer carries
it, so until then the ledger adds it: from the end of the request (`add`), through the shipment
(`shipped`, with the ack's `spend_seq`), until a view whose `spend.seq` reaches that seq. No
spend is counted twice and none is missed, whatever the order of acks and view answers. Spend
of other gateways arrives with the view (and, with Redis, through Redis at once).

Spend is the metered tokens at the model's prices in the view: never an estimate. A month is
the UTC calendar month; the ledger starts each month empty.
"""

from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime

from hashgrid.contracts.gateway import SpendReport
from hashgrid.ratelimit import Clock


def period_of_ms(now_ms: float) -> tuple[str, float]:
    """The UTC month containing `now_ms`, as `YYYY-MM`, and when it ends (ms)."""
    t = datetime.fromtimestamp(now_ms / 1000, UTC)
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return f"{t.year:04d}-{t.month:02d}", datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000


Entry = tuple[str | None, str | None, float]  # key id, customer id (None: no budget), USD


class SpendLedger:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.period, self._period_end = period_of_ms(clock())
        self._unshipped: dict[str, Entry] = {}
        self._shipped: deque[tuple[int, list[Entry]]] = deque()  # by ack seq, oldest first
        self._keys: dict[str, float] = {}
        self._customers: dict[str, float] = {}

    def add(self, request_id: str, key_id: str | None, customer_id: str | None, usd: float) -> None:
        """A finished request's cost, for its key and customer (None where no budget)."""
        self._roll()
        self._unshipped[request_id] = (key_id, customer_id, usd)
        self._count((key_id, customer_id, usd), 1.0)

    def shipped(self, request_ids: Sequence[str], seq: int) -> None:
        """The server stored these records; its figures hold them from `seq` on."""
        entries = [e for rid in request_ids if (e := self._unshipped.pop(rid, None)) is not None]
        if entries:
            self._shipped.append((seq, entries))

    def key(self, key_id: str, report: SpendReport) -> float:
        """The key's spend this month: the server's figure and what it does not hold yet."""
        self._catch_up(report)
        stored = report.keys.get(key_id, 0.0) if report.period == self.period else 0.0
        return stored + self._keys.get(key_id, 0.0)

    def customer(self, customer_id: str, report: SpendReport) -> float:
        self._catch_up(report)
        stored = report.customers.get(customer_id, 0.0) if report.period == self.period else 0.0
        return stored + self._customers.get(customer_id, 0.0)

    def _catch_up(self, report: SpendReport) -> None:
        self._roll()
        shipped = self._shipped
        while shipped and shipped[0][0] <= report.seq:
            for entry in shipped.popleft()[1]:
                self._count(entry, -1.0)

    def _count(self, entry: Entry, sign: float) -> None:
        key_id, customer_id, usd = entry
        if key_id is not None:
            self._keys[key_id] = self._keys.get(key_id, 0.0) + sign * usd
        if customer_id is not None:
            self._customers[customer_id] = self._customers.get(customer_id, 0.0) + sign * usd

    def _roll(self) -> None:
        now = self._clock()
        if now < self._period_end:
            return
        self.period, self._period_end = period_of_ms(now)
        self._unshipped.clear()
        self._shipped.clear()
        self._keys.clear()
        self._customers.clear()
