"""What this gateway knows of each key's and customer's spend this month, for budgets.

The control plane's figures (the view's `SpendReport`) hold every usage record it stored. This
gateway's own spend gets there only once its record is shipped and a later view answer carries
it, so until then the ledger adds it: from the end of the request (`add`), through the shipment
(`shipped`, with the ack's `spend_seq`), until a view whose `spend.seq` reaches that seq. No
spend is counted twice and none is missed, whatever the order of acks and view answers. Spend
of other gateways arrives with the view (and, with Redis, through Redis at once).

Spend is in integer micro-dollars: each request's metered tokens at the model's prices in the
view, rounded up (`billing.money.micros_up`); never an estimate. The month is the billing
period (`billing.periods.Period`, the UTC calendar month); the ledger starts each one empty.
"""

from collections import deque
from collections.abc import Sequence

from hashgrid.billing.periods import Period
from hashgrid.contracts.gateway import SpendReport
from hashgrid.ratelimit import Clock

Entry = tuple[str | None, str | None, int]  # key id, customer id (None: no budget), micros


class SpendLedger:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.period = Period.of_ms(clock())
        self._period_end = self.period.end_ms
        self._label = str(self.period)  # as `SpendReport.period` writes it
        self._unshipped: dict[str, Entry] = {}
        self._shipped: deque[tuple[int, list[Entry]]] = deque()  # by ack seq, oldest first
        self._keys: dict[str, int] = {}
        self._customers: dict[str, int] = {}

    def add(
        self, request_id: str, key_id: str | None, customer_id: str | None, micros: int
    ) -> None:
        """A finished request's cost, for its key and customer (None where no budget)."""
        self._roll()
        self._unshipped[request_id] = (key_id, customer_id, micros)
        self._count((key_id, customer_id, micros), 1)

    def shipped(self, request_ids: Sequence[str], seq: int) -> None:
        """The server stored these records; its figures hold them from `seq` on."""
        entries = [e for rid in request_ids if (e := self._unshipped.pop(rid, None)) is not None]
        if entries:
            self._shipped.append((seq, entries))

    def key(self, key_id: str, report: SpendReport) -> int:
        """The key's spend this month: the server's figure and what it does not hold yet."""
        self._catch_up(report)
        stored = report.keys.get(key_id, 0) if report.period == self._label else 0
        return stored + self._keys.get(key_id, 0)

    def customer(self, customer_id: str, report: SpendReport) -> int:
        self._catch_up(report)
        stored = report.customers.get(customer_id, 0) if report.period == self._label else 0
        return stored + self._customers.get(customer_id, 0)

    def _catch_up(self, report: SpendReport) -> None:
        self._roll()
        shipped = self._shipped
        while shipped and shipped[0][0] <= report.seq:
            for entry in shipped.popleft()[1]:
                self._count(entry, -1)

    def _count(self, entry: Entry, sign: int) -> None:
        key_id, customer_id, micros = entry
        if key_id is not None:
            self._keys[key_id] = self._keys.get(key_id, 0) + sign * micros
        if customer_id is not None:
            self._customers[customer_id] = self._customers.get(customer_id, 0) + sign * micros

    def _roll(self) -> None:
        now = self._clock()
        if now < self._period_end:
            return
        self.period = Period.of_ms(now)
        self._period_end = self.period.end_ms
        self._label = str(self.period)
        self._unshipped.clear()
        self._shipped.clear()
        self._keys.clear()
        self._customers.clear()
