"""Money's units and its roundings (see the package docstring for why these units)."""

from dataclasses import dataclass
from decimal import Decimal

PICO_PER_USD = 10**12
MICROS_PER_USD = 10**6
PICO_PER_MICRO = 10**6
PICO_PER_CENT = 10**10
BPS = 10_000  # basis points in a whole: shares and discounts
CENT = Decimal("0.01")
# The finest unit price a price sheet may name: one micro-dollar per million tokens.
PRICE_QUANTUM = Decimal("0.000001")
# The dearest: $10,000 per million tokens; with at most 2^31 tokens in a record its cost fits
# a 64-bit integer of pico-dollars (2^31 * 10^10 < 2^63).
MAX_USD_PER_MTOK = Decimal(10_000)


class MoneyError(ValueError):
    """A money figure that has no exact integer form (a fraction of the unit, out of range)."""


@dataclass(frozen=True, slots=True)
class UnitPrices:
    """What a token costs, in pico-dollars: prompt tokens, cached prompt tokens, completion."""

    prompt: int
    cached: int
    completion: int

    def cost(self, prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> int:
        """The exact cost in pico-dollars; `cached_tokens` are part of `prompt_tokens`."""
        cached = min(cached_tokens, prompt_tokens)
        return (
            (prompt_tokens - cached) * self.prompt
            + cached * self.cached
            + completion_tokens * self.completion
        )


FREE = UnitPrices(0, 0, 0)


def price_of(usd_per_mtok: Decimal | int | str) -> int:
    """A price sheet's USD per million tokens as pico-dollars per token, exactly."""
    value = Decimal(usd_per_mtok)
    if not value.is_finite() or value < 0 or value > MAX_USD_PER_MTOK:
        raise MoneyError(f"a price must be between 0 and {MAX_USD_PER_MTOK} USD per 1M tokens")
    micros = value / PRICE_QUANTUM
    if micros != micros.to_integral_value():
        raise MoneyError("a price has at most 6 decimal places (USD per 1M tokens)")
    return int(micros)


def usd_per_mtok(pico_per_token: int) -> Decimal:
    """A unit price as a price sheet writes it: USD per million tokens."""
    return (Decimal(pico_per_token) * PRICE_QUANTUM).normalize() + Decimal("0.00")


def usd(pico: int) -> Decimal:
    """An exact cost in USD, every digit kept."""
    return Decimal(pico).scaleb(-12).normalize() + Decimal("0.00")


def half_even(numerator: int, denominator: int) -> int:
    """`numerator / denominator` (denominator > 0) rounded half to even, in integers."""
    q, r = divmod(numerator, denominator)
    return q + (2 * r > denominator or (2 * r == denominator and q % 2 == 1))


def cents(pico: int) -> int:
    """Pico-dollars to whole cents, half to even: the one rounding of an invoice line."""
    return half_even(pico, PICO_PER_CENT)


def cents_usd(amount_cents: int) -> Decimal:
    """Cents as a USD amount with two decimal places."""
    return (Decimal(amount_cents) * CENT).quantize(CENT)


def micros_up(pico: int) -> int:
    """Pico-dollars rounded up to micro-dollars: what a budget counts."""
    return -(-pico // PICO_PER_MICRO)


def micros_of(amount_usd: Decimal | int | str) -> int:
    """A USD amount (a budget) as micro-dollars; finer than a micro-dollar is refused."""
    value = Decimal(amount_usd)
    if not value.is_finite() or value < 0:
        raise MoneyError("an amount must be a finite number of USD, not negative")
    micros = value * MICROS_PER_USD
    if micros != micros.to_integral_value():
        raise MoneyError("an amount has at most 6 decimal places (USD)")
    return int(micros)


def micros_usd(micros: int) -> Decimal:
    return (Decimal(micros).scaleb(-6)).normalize() + Decimal("0.00")


def format_cents(amount_cents: int) -> str:
    """`$1,234.56` (and `-$3.00`)."""
    sign = "-" if amount_cents < 0 else ""
    whole, part = divmod(abs(amount_cents), 100)
    return f"{sign}${whole:,}.{part:02d}"
