"""The price book: the entry in force when a request started, less the customer's discount."""

from datetime import UTC, datetime

from hashgrid.billing.money import UnitPrices
from hashgrid.billing.prices import Discount, PriceBook, PriceEntry, discounted

JAN = datetime(2026, 1, 1, tzinfo=UTC)
MID = datetime(2026, 1, 15, tzinfo=UTC)
OLD = UnitPrices(500_000, 250_000, 1_500_000)
NEW = UnitPrices(400_000, 200_000, 1_200_000)


def book(*discounts: Discount) -> PriceBook:
    return PriceBook(
        [
            PriceEntry("m", "flex", MID, NEW),
            PriceEntry("m", "flex", JAN, OLD),
            PriceEntry("m", "firm", JAN, UnitPrices(900_000, 900_000, 2_000_000)),
        ],
        discounts,
    )


def test_a_request_is_priced_by_the_entry_in_force_when_it_started() -> None:
    b = book()
    assert b.list_price("m", "flex", datetime(2026, 1, 14, 23, tzinfo=UTC)) == OLD
    assert b.list_price("m", "flex", MID) == NEW
    assert b.list_price("m", "flex", datetime(2025, 12, 31, tzinfo=UTC)) is None
    assert b.list_price("other", "flex", MID) is None


def test_tiers_have_their_own_prices_and_a_gone_deployment_is_priced_as_flex() -> None:
    b = book()
    firm = b.charge("m", "firm", "c", MID)
    assert firm is not None
    assert firm.prices.prompt == 900_000
    gone = b.charge("m", None, "c", MID)
    assert gone is not None
    assert (gone.tier, gone.prices) == ("flex", NEW)


def test_a_model_discount_wins_over_an_all_models_one_from_its_moment_on() -> None:
    b = book(Discount("c", None, 1000, JAN), Discount("c", "m", 2500, MID))
    early = b.charge("m", "flex", "c", datetime(2026, 1, 10, tzinfo=UTC))
    late = b.charge("m", "flex", "c", MID)
    assert early is not None
    assert early.discount_bps == 1000
    assert early.prices == UnitPrices(450_000, 225_000, 1_350_000)
    assert late is not None
    assert late.discount_bps == 2500
    assert late.prices == UnitPrices(300_000, 150_000, 900_000)
    other = b.charge("m", "flex", "someone-else", MID)
    assert other is not None
    assert (other.discount_bps, other.prices) == (0, NEW)


def test_a_discounted_unit_price_rounds_half_to_even_to_the_pico_dollar() -> None:
    assert discounted(UnitPrices(5, 15, 25), 5000) == UnitPrices(2, 8, 12)
    assert discounted(UnitPrices(7, 0, 1), 3333) == UnitPrices(5, 0, 1)
