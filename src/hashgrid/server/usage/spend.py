"""This month's spend of each key and customer, in memory, from the stored usage.

Loaded at start with one aggregate query over the month's records, then raised by every
stored batch, so the gateway view can carry it with no query (`SpendReport`, for the keys and
customers with a budget). `seq` grows with each stored batch and is what `UsageAck.spend_seq`
tells a gateway: figures at a `seq` at least that hold the batch. It starts from the clock in
milliseconds, like `Changes`, so a restarted server's figures (reloaded from the database,
holding every stored batch) are never taken for older ones.

The month is the billing period (`billing.periods.Period`); a new one starts from zero. Sums
are kept exact, in pico-dollars (each record's `cost_pico`), and told in micro-dollars rounded
up, as budgets count (`billing.money.micros_up`).
"""

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.billing.money import micros_up
from hashgrid.billing.periods import Period
from hashgrid.contracts.gateway import SpendReport
from hashgrid.server.db.base import utcnow
from hashgrid.server.usage.tables import UsageRecordRow


class Spend:
    def __init__(self, clock: Callable[[], datetime] = utcnow) -> None:
        self._clock = clock
        self.period = Period.of(clock())
        self.seq = int(clock().timestamp() * 1000)
        self._keys: defaultdict[str, int] = defaultdict(int)  # pico-dollars
        self._customers: defaultdict[str, int] = defaultdict(int)

    async def load(self, session: AsyncSession) -> None:
        """Sum this month's stored usage; call once, before any batch is stored."""
        self._reset(Period.of(self._clock()))
        u = UsageRecordRow
        rows = await session.execute(
            select(u.key_id, u.customer_id, func.sum(u.cost_pico))
            .where(u.started_at >= self.period.start)
            .group_by(u.key_id, u.customer_id)
        )
        for key_id, customer_id, pico in rows:
            self._keys[key_id] += int(pico or 0)
            self._customers[customer_id] += int(pico or 0)

    def add(self, costs: Iterable[tuple[str, str, datetime, int]]) -> int:
        """Count newly stored records (key id, customer id, start, cost in pico-dollars);
        return the new seq."""
        self._roll()
        for key_id, customer_id, started_at, pico in costs:
            if pico and started_at in self.period:
                self._keys[key_id] += pico
                self._customers[customer_id] += pico
        self.seq += 1
        return self.seq

    def of_key(self, key_id: str) -> int:
        """The key's spend this month, in micro-dollars."""
        self._roll()
        return micros_up(self._keys.get(key_id, 0))

    def of_customer(self, customer_id: str) -> int:
        self._roll()
        return micros_up(self._customers.get(customer_id, 0))

    def report(self, key_ids: Iterable[str], customer_ids: Iterable[str]) -> SpendReport:
        """The figures of these keys and customers (those with budgets), at the current seq."""
        self._roll()
        keys, customers = self._keys, self._customers
        return SpendReport(
            seq=self.seq,
            period=str(self.period),
            keys={k: micros_up(keys[k]) for k in key_ids if k in keys},
            customers={c: micros_up(customers[c]) for c in customer_ids if c in customers},
        )

    def _roll(self) -> None:
        period = Period.of(self._clock())
        if period != self.period:
            self._reset(period)

    def _reset(self, period: Period) -> None:
        self.period = period
        self._keys.clear()
        self._customers.clear()
