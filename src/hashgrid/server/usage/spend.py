"""This month's spend of each key and customer, in memory, from the stored usage.

Loaded at start with one aggregate query over the month's records, then raised by every
stored batch, so the gateway view can carry it with no query (`SpendReport`, for the keys and
customers with a budget). `seq` grows with each stored batch and is what `UsageAck.spend_seq`
tells a gateway: figures at a `seq` at least that hold the batch. It starts from the clock in
milliseconds, like `Changes`, so a restarted server's figures (reloaded from the database,
holding every stored batch) are never taken for older ones. A new month starts from zero.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.billing.money import PICO_PER_USD
from hashgrid.contracts.gateway import SpendReport
from hashgrid.server.db.base import utcnow
from hashgrid.server.usage.tables import UsageRecordRow


def period_of(t: datetime) -> str:
    """The budget period (UTC calendar month) `t` falls in, as `YYYY-MM`."""
    t = t.astimezone(UTC)
    return f"{t.year:04d}-{t.month:02d}"


def period_start(t: datetime) -> datetime:
    t = t.astimezone(UTC)
    return datetime(t.year, t.month, 1, tzinfo=UTC)


class Spend:
    def __init__(self, clock: Callable[[], datetime] = utcnow) -> None:
        self._clock = clock
        self.period = period_of(clock())
        self.seq = int(clock().timestamp() * 1000)
        self._keys: defaultdict[str, float] = defaultdict(float)
        self._customers: defaultdict[str, float] = defaultdict(float)

    async def load(self, session: AsyncSession) -> None:
        """Sum this month's stored usage; call once, before any batch is stored."""
        now = self._clock()
        self._reset(period_of(now))
        u = UsageRecordRow
        rows = await session.execute(
            select(u.key_id, u.customer_id, func.sum(u.cost_pico))
            .where(u.started_at >= period_start(now))
            .group_by(u.key_id, u.customer_id)
        )
        for key_id, customer_id, usd in rows:
            self._keys[key_id] += int(usd or 0) / PICO_PER_USD
            self._customers[customer_id] += int(usd or 0) / PICO_PER_USD

    def add(self, costs: Iterable[tuple[str, str, datetime, float]]) -> int:
        """Count newly stored records (key id, customer id, start, cost); return the new seq."""
        self._roll()
        for key_id, customer_id, started_at, usd in costs:
            if usd and period_of(started_at) == self.period:
                self._keys[key_id] += usd
                self._customers[customer_id] += usd
        self.seq += 1
        return self.seq

    def of_key(self, key_id: str) -> float:
        self._roll()
        return self._keys.get(key_id, 0.0)

    def of_customer(self, customer_id: str) -> float:
        self._roll()
        return self._customers.get(customer_id, 0.0)

    def report(self, key_ids: Iterable[str], customer_ids: Iterable[str]) -> SpendReport:
        """The figures of these keys and customers (those with budgets), at the current seq."""
        self._roll()
        keys, customers = self._keys, self._customers
        return SpendReport(
            seq=self.seq,
            period=self.period,
            keys={k: keys[k] for k in key_ids if k in keys},
            customers={c: customers[c] for c in customer_ids if c in customers},
        )

    def _roll(self) -> None:
        period = period_of(self._clock())
        if period != self.period:
            self._reset(period)

    def _reset(self, period: str) -> None:
        self.period = period
        self._keys.clear()
        self._customers.clear()
