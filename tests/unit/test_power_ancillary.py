"""A site's grid offer: the MW it may offer and the ancillary price source, as the power model
takes them and as the planner's market reads them."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from hashgrid.contracts.api.power import ErcotAncillary, PowerModel
from hashgrid.server.errors import Invalid
from hashgrid.server.power.market import HISTORY_H, check_sources, site_market
from hashgrid.server.power.planning import NodeWork, energy_site

BASE: dict[str, Any] = {
    "asics": [{"model": "Antminer S21", "count": 4}],
    "price": {"kind": "fixed", "usd_per_mwh": 30.0},
    "hashprice": {"kind": "constant", "usd_per_ph_day": 50.0},
}


def _model(ancillary: dict[str, Any] | None) -> PowerModel:
    return PowerModel.model_validate({**BASE, "ancillary": ancillary})


def test_without_an_ancillary_section_nothing_is_offered() -> None:
    model = PowerModel.model_validate(BASE)
    assert model.ancillary is None
    assert energy_site("tx", 1.0, model, NodeWork()).ancillary_mw == 0
    start = datetime(2025, 7, 2, tzinfo=UTC)
    assert not site_market(model, start, 2).ancillary.any()


def test_the_offer_caps_the_sites_grid_mw_at_a_constant_price() -> None:
    model = _model({"mw": 0.01, "price": {"kind": "constant", "usd_per_mw_h": 12.5}})
    assert energy_site("tx", 1.0, model, NodeWork()).ancillary_mw == 0.01
    market = site_market(model, datetime(2025, 7, 2, tzinfo=UTC), 2)
    assert list(market.ancillary[HISTORY_H:]) == [12.5, 12.5]


@pytest.mark.parametrize(
    "ancillary",
    [
        {"mw": 1, "price": {"kind": "ercot", "path": "as.csv", "product": "spin"}},
        {"mw": 1, "price": {"kind": "ercot", "path": "as.csv", "product": "ECRS"}},
        {"mw": -0.5, "price": {"kind": "constant", "usd_per_mw_h": 1}},
        {"mw": 1, "price": {"kind": "constant", "usd_per_mw_h": -1}},
        {"mw": 1, "price": {"kind": "ercot", "path": "", "product": "ecrs"}},
        {"price": {"kind": "constant", "usd_per_mw_h": 1}},
    ],
)
def test_bad_offers_are_refused(ancillary: dict[str, Any]) -> None:
    """Unknown or misspelt products, a negative cap or price, no path, no cap."""
    with pytest.raises(ValidationError):
        _model(ancillary)


def test_every_ercot_product_is_taken() -> None:
    for product in ("ecrs", "rrs", "nspin", "regdn", "regup"):
        offer = _model({"mw": 1, "price": {"kind": "ercot", "path": "as.csv", "product": product}})
        assert offer.ancillary is not None
        assert isinstance(offer.ancillary.price, ErcotAncillary)


def test_an_ercot_product_is_read_at_the_utc_hour_of_its_central_hour(tmp_path: Path) -> None:
    """The market's ancillary price is the product's column, hour ending H of a summer day
    (CDT, UTC-5) at H+4 UTC, as the energy prices are read."""
    rows = ["delivery_date,hour_ending,regup,regdn,rrs,nspin,ecrs"]
    for day in ("2025-05-30", "2025-05-31", *(f"2025-06-{d:02d}" for d in range(1, 31))):
        rows += [f"{day},{h},1,2,{h},4,5" for h in range(1, 25)]
    (tmp_path / "as.csv").write_text("\n".join(rows) + "\n")
    price = {"kind": "ercot", "path": str(tmp_path / "as.csv"), "product": "rrs"}
    model = _model({"mw": 0.01, "price": price})
    start = datetime(2025, 7, 1, 0, tzinfo=UTC)  # 19:00 CDT on 30 June: hour ending 20
    market = site_market(model, start, 3)
    assert list(market.ancillary[HISTORY_H:]) == [20.0, 21.0, 22.0]


def test_a_series_file_that_cannot_be_read_is_invalid(tmp_path: Path) -> None:
    """Missing, or without the product's column: refused when the model is set."""
    prices = "delivery_date,hour_ending,dam_LZ_WEST,rtm_LZ_WEST\n2025-07-01,1,20,25\n"
    (tmp_path / "prices.csv").write_text(prices)
    for path in (tmp_path / "none.csv", tmp_path / "prices.csv"):
        price = {"kind": "ercot", "path": str(path), "product": "ecrs"}
        with pytest.raises(Invalid, match="cannot read the site's series"):
            check_sources(_model({"mw": 1, "price": price}))
