"""The price book: what a token costs, by model (the name clients call) and tier, from a moment
on, less a customer's discount from a moment on.

Entries are effective-dated: the price of a request is the entry in force when it started,
whenever its record arrives. A record keeps the prices it was charged, so a later entry never
changes what was billed; an earlier-dated entry can only price records that had none. A
discount (basis points) applies to every unit price of the customer's requests, for one model
or for all; a model's own discount wins over an all-models one. A discounted unit price is
rounded half to even to the pico-dollar per token (a micro-dollar per million tokens): it is a
price on a sheet, not an amount, and amounts are still rounded only per invoice line.
"""

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from hashgrid.billing.money import BPS, UnitPrices, half_even

TIERS = ("firm", "flex")
DEFAULT_TIER = "flex"  # a request whose deployment is gone is priced at the default tier


@dataclass(frozen=True, slots=True)
class PriceEntry:
    model: str
    tier: str
    effective_from: datetime
    prices: UnitPrices


@dataclass(frozen=True, slots=True)
class Discount:
    customer_id: str
    model: str | None  # None: every model
    bps: int  # 0..10000
    effective_from: datetime


@dataclass(frozen=True, slots=True)
class Charge:
    """What a request is charged: its tier, its unit prices net of the discount, the discount."""

    tier: str
    prices: UnitPrices
    discount_bps: int


def discounted(prices: UnitPrices, bps: int) -> UnitPrices:
    return UnitPrices(*(_less(p, bps) for p in (prices.prompt, prices.cached, prices.completion)))


def _less(price: int, bps: int) -> int:
    return half_even(price * (BPS - bps), BPS)


class PriceBook:
    def __init__(self, entries: Iterable[PriceEntry], discounts: Iterable[Discount] = ()) -> None:
        by_key: defaultdict[tuple[str, str], list[PriceEntry]] = defaultdict(list)
        for e in entries:
            by_key[(e.model, e.tier)].append(e)
        self._entries = {k: sorted(v, key=lambda e: e.effective_from) for k, v in by_key.items()}
        self._starts = {k: [e.effective_from for e in v] for k, v in self._entries.items()}
        by_who: defaultdict[tuple[str, str | None], list[Discount]] = defaultdict(list)
        for d in discounts:
            by_who[(d.customer_id, d.model)].append(d)
        self._discounts = {k: sorted(v, key=lambda d: d.effective_from) for k, v in by_who.items()}

    def list_price(self, model: str, tier: str, at: datetime) -> UnitPrices | None:
        """The entry in force at `at`; None when there is none (the request is unpriced)."""
        key = (model, tier)
        starts = self._starts.get(key)
        if not starts:
            return None
        i = bisect_right(starts, at)
        return self._entries[key][i - 1].prices if i else None

    def discount(self, customer_id: str, model: str, at: datetime) -> int:
        """The customer's discount in force at `at` for `model` (basis points)."""
        for key in ((customer_id, model), (customer_id, None)):
            found = [d for d in self._discounts.get(key, ()) if d.effective_from <= at]
            if found:
                return found[-1].bps
        return 0

    def charge(self, model: str, tier: str | None, customer_id: str, at: datetime) -> Charge | None:
        tier = tier or DEFAULT_TIER
        listed = self.list_price(model, tier, at)
        if listed is None:
            return None
        bps = self.discount(customer_id, model, at)
        return Charge(tier, discounted(listed, bps) if bps else listed, bps)
