"""The Redfish client against a fake BMC: reading a node's power, turning it off and on once, and
saying clearly why when a BMC refuses or is not there."""

import re
from collections.abc import AsyncIterator

import pytest

from hashgrid.agent.bmc import BmcError, Redfish

from support.fake_bmc import FakeBmc


@pytest.fixture
async def redfish() -> AsyncIterator[Redfish]:
    client = Redfish(timeout_s=5.0)
    yield client
    await client.aclose()


@pytest.mark.parametrize(("powered", "state"), [(True, "On"), (False, "Off")])
async def test_reads_the_power_state(redfish: Redfish, powered: bool, state: str) -> None:
    with FakeBmc(powered=powered) as bmc:
        assert await redfish.power_state(bmc.system_url) == state


async def test_powering_off_asks_a_graceful_shutdown(redfish: Redfish) -> None:
    with FakeBmc(powered=True) as bmc:
        assert await redfish.set_power(bmc.system_url, on=False) is True
        assert bmc.resets == ["GracefulShutdown"]
        assert bmc.powered is False
        assert await redfish.power_state(bmc.system_url) == "Off"


@pytest.mark.parametrize("on", [True, False])
async def test_a_node_already_there_is_sent_nothing(redfish: Redfish, on: bool) -> None:
    with FakeBmc(powered=on) as bmc:
        assert await redfish.set_power(bmc.system_url, on=on) is False
        assert bmc.resets == []
        assert bmc.powered is on


async def test_powering_on_asks_on_and_the_node_boots(redfish: Redfish) -> None:
    booted: list[bool] = []
    with FakeBmc(powered=False, on_power=booted.append) as bmc:
        assert await redfish.set_power(bmc.system_url, on=True) is True
        assert bmc.resets == ["On"]
        assert bmc.powered is True
        assert booted == [True]


async def test_powering_off_forces_it_where_a_graceful_shutdown_is_not_allowed(
    redfish: Redfish,
) -> None:
    with FakeBmc(powered=True, allowed=("On", "ForceOff")) as bmc:
        assert await redfish.set_power(bmc.system_url, on=False) is True
        assert bmc.resets == ["ForceOff"]
        assert bmc.powered is False


async def test_a_bmc_that_allows_no_way_off_is_an_error(redfish: Redfish) -> None:
    with FakeBmc(powered=True, allowed=("On", "ForceRestart")) as bmc:
        with pytest.raises(BmcError, match="GracefulShutdown or ForceOff"):
            await redfish.set_power(bmc.system_url, on=False)
        assert bmc.resets == []
        assert bmc.powered is True


async def test_basic_auth_is_sent_and_a_wrong_password_is_refused() -> None:
    with FakeBmc(username="admin", password="s3cret", powered=True) as bmc:
        right = Redfish(username="admin", password="s3cret")
        wrong = Redfish(username="admin", password="guess")
        anonymous = Redfish()
        try:
            assert await right.set_power(bmc.system_url, on=False) is True
            assert bmc.powered is False
            for client in (wrong, anonymous):
                with pytest.raises(BmcError, match=r"HTTP 401 Unauthorized: .*no valid session"):
                    await client.set_power(bmc.system_url, on=True)
            assert bmc.resets == ["GracefulShutdown"]
        finally:
            for client in (right, wrong, anonymous):
                await client.aclose()


async def test_an_unknown_system_gives_the_redfish_error_message(redfish: Redfish) -> None:
    with FakeBmc() as bmc:
        url = bmc.system_url.replace("/Systems/1", "/Systems/2")
        with pytest.raises(BmcError, match=r"Systems/2: HTTP 404 Not Found: .*was not found"):
            await redfish.power_state(url)


async def test_a_resource_that_is_not_a_system_is_an_error(redfish: Redfish) -> None:
    with FakeBmc() as bmc:
        root = bmc.system_url.removesuffix("/Systems/1")
        with pytest.raises(BmcError, match="no PowerState"):
            await redfish.power_state(root)


async def test_a_bmc_that_is_not_there_is_an_error(redfish: Redfish) -> None:
    with FakeBmc() as bmc:
        url = bmc.system_url  # a port that was just closed: nothing listens there now
    with pytest.raises(BmcError, match=re.escape(f"GET {url}: unreachable")):
        await redfish.set_power(url, on=False)
