"""Where the gateway takes a client's country from: header, then key, then its own setting."""

import pytest

from hashgrid.contracts.gateway import KeyEntry
from hashgrid.gateway.errors import BadRequest
from hashgrid.gateway.settings import GatewaySettings
from hashgrid.gateway.steering import client_country

KEY = KeyEntry(key_id="k", key_hash="h", customer_id="c")
KEY_IN_KENYA = KeyEntry(key_id="k", key_hash="h", customer_id="c", country="KE")


def test_the_header_wins_over_key_and_gateway() -> None:
    assert client_country("ae", KEY_IN_KENYA, "US") == "AE"


def test_the_keys_country_wins_over_the_gateways() -> None:
    assert client_country(None, KEY_IN_KENYA, "US") == "KE"
    assert client_country(None, KEY, "US") == "US"
    assert client_country(None, KEY, None) is None


@pytest.mark.parametrize("bad", ["", "USA", "XX", "1", "u s"])
def test_a_header_that_is_no_country_code_is_a_bad_request(bad: str) -> None:
    with pytest.raises(BadRequest, match="x-hashgrid-client-country"):
        client_country(bad, KEY, "US")


def test_the_gateways_country_setting_is_checked() -> None:
    assert GatewaySettings(server_url="http://x", token="t", country="de").country == "DE"
    with pytest.raises(ValueError, match="alpha-2"):
        GatewaySettings(server_url="http://x", token="t", country="Germany")
