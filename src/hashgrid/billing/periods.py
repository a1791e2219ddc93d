"""The billing period: the UTC calendar month. Budgets, invoices, contracts' hours and operator
statements all count in it; the gateway and the server read it from here."""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True, slots=True, order=True)
class Period:
    year: int
    month: int

    @classmethod
    def of(cls, t: datetime) -> "Period":
        t = t.astimezone(UTC)
        return cls(t.year, t.month)

    @classmethod
    def of_ms(cls, epoch_ms: float) -> "Period":
        return cls.of(datetime.fromtimestamp(epoch_ms / 1000, UTC))

    @classmethod
    def parse(cls, text: str) -> "Period":
        """`YYYY-MM`; a ValueError for anything else."""
        m = PERIOD.match(text)
        if m is None:
            raise ValueError(f"a period is YYYY-MM, not {text!r}")
        return cls(int(m[1]), int(m[2]))

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The start of the next period (exclusive)."""
        return self.next().start

    @property
    def end_ms(self) -> float:
        return self.end.timestamp() * 1000

    @property
    def hours(self) -> int:
        return int((self.end - self.start) / timedelta(hours=1))

    def next(self) -> "Period":
        return Period(self.year + 1, 1) if self.month == 12 else Period(self.year, self.month + 1)

    def previous(self) -> "Period":
        return Period(self.year - 1, 12) if self.month == 1 else Period(self.year, self.month - 1)

    def __contains__(self, t: datetime) -> bool:
        return self.start <= t < self.end

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"
