"""pyasic drives fake LuxOS miners over their real RPC protocol: status, power, sleep, fleets.

Every check reads the fake's own state (what the miner would do), not only what the driver
says it did.
"""

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from pyasic.miners.antminer.luxos.X21.S21 import LUXMinerS21
from pyasic.miners.base import MinerProtocol

from hashgrid.agent.miners.driver import Applied, MinerAction, MinerTarget
from hashgrid.agent.miners.errors import MinerUnreachable
from hashgrid.agent.miners.fleet import Fleet
from hashgrid.agent.miners.pyasic_driver import PyasicDriver, connect

from support.fake_miner import FakeLuxMiner, free_loopback_address


@pytest.fixture
async def fake() -> AsyncIterator[FakeLuxMiner]:
    async with await FakeLuxMiner.start() as miner:
        yield miner


async def test_pyasic_identifies_the_fake_and_reads_its_status(fake: FakeLuxMiner) -> None:
    driver = await connect(fake.address)
    assert driver.capabilities.power_target
    assert driver.capabilities.sleep
    status = await driver.status()
    assert status.model == "S21"
    assert status.firmware == "LuxOS"
    assert status.hashing
    assert status.hashrate_ths == pytest.approx(200.0, rel=1e-3)
    assert status.power_w == fake.watts == 3500
    assert status.power_limit_w == 3500


async def test_a_power_target_sets_the_highest_profile_within_it(fake: FakeLuxMiner) -> None:
    driver = await connect(fake.address)
    assert await driver.set_power_target(2500) == Applied(MinerAction.POWER)
    assert fake.profile == "340MHz"
    assert fake.hashing
    assert fake.watts <= 2500
    assert fake.atm_enabled  # pyasic turns thermal management off around the change only
    status = await driver.status()
    assert status.power_w == status.power_limit_w == fake.watts
    assert status.hashrate_ths == pytest.approx(fake.hashrate_ths, rel=1e-3)
    assert status.hashrate_ths is not None
    assert status.hashrate_ths < 200


async def test_sleep_stops_hashing_and_resume_starts_it(fake: FakeLuxMiner) -> None:
    driver = await connect(fake.address)
    assert await driver.sleep() == Applied(MinerAction.SLEEP)
    assert not fake.hashing
    assert fake.watts == fake.idle_watts
    asleep = await driver.status()
    assert not asleep.hashing
    assert asleep.hashrate_ths == 0
    assert asleep.power_w == fake.idle_watts

    assert await driver.resume() == Applied(MinerAction.RESUME)
    assert fake.hashing
    awake = await driver.status()
    assert awake.hashing
    assert awake.power_w == 3500


async def test_a_target_below_every_profile_sleeps_the_miner(fake: FakeLuxMiner) -> None:
    driver = await connect(fake.address)
    applied = await driver.set_power_target(500)
    assert applied.done is MinerAction.SLEEP
    assert "500 W" in applied.note
    assert "slept instead" in applied.note
    assert not fake.hashing


async def test_a_zero_target_sleeps_the_miner(fake: FakeLuxMiner) -> None:
    driver = await connect(fake.address)
    assert (await driver.set_power_target(0)).done is MinerAction.SLEEP
    assert not fake.hashing


async def test_a_power_target_wakes_a_sleeping_miner(fake: FakeLuxMiner) -> None:
    driver = await connect(fake.address)
    await driver.sleep()
    assert await driver.set_power_target(3000) == Applied(MinerAction.POWER)
    assert fake.hashing
    assert fake.profile == "415MHz"


async def test_an_expired_session_is_renewed() -> None:
    """pyasic keeps a LuxOS session id forever; the firmware forgets it after a while."""
    async with await FakeLuxMiner.start(session_ttl_s=0.2) as fake:
        driver = await connect(fake.address)
        await driver.sleep()
        await asyncio.sleep(0.3)
        assert await driver.resume() == Applied(MinerAction.RESUME)
        assert fake.hashing
        assert fake.received.count("logon") == 2


class _LuxOSWithoutPowerLimits(LUXMinerS21):
    """Stands in for the firmwares that can only sleep or hash at full power (stock Antminer,
    ePIC, Hiveon): pyasic's base `set_power_limit`, which does nothing, on a LuxOS class."""

    set_power_limit = MinerProtocol.set_power_limit


async def test_without_power_limits_a_target_turns_the_miner_off_or_on(fake: FakeLuxMiner) -> None:
    driver = PyasicDriver(_LuxOSWithoutPowerLimits(fake.address))
    assert not driver.capabilities.power_target
    assert driver.capabilities.sleep

    within = await driver.set_power_target(4000)
    assert within.done is MinerAction.RESUME
    assert "takes no power limit" in within.note
    assert fake.hashing

    below = await driver.set_power_target(3000)
    assert below.done is MinerAction.SLEEP
    assert "slept instead" in below.note
    assert not fake.hashing

    # It drew 3,500 W hashing when last read, so a 4,000 W target wakes it.
    woken = await driver.set_power_target(4000)
    assert woken.done is MinerAction.RESUME
    assert "3500 W" in woken.note
    assert fake.hashing


async def test_without_power_limits_an_unknown_draw_leaves_the_miner_asleep(
    fake: FakeLuxMiner,
) -> None:
    fake.hashing = False  # asleep before this agent ever saw it hashing
    driver = PyasicDriver(_LuxOSWithoutPowerLimits(fake.address))
    applied = await driver.set_power_target(10_000)
    assert applied.done is MinerAction.SLEEP
    assert "left asleep" in applied.note
    assert not fake.hashing


async def test_nothing_at_an_address_is_unreachable() -> None:
    with pytest.raises(MinerUnreachable, match="no miner"):
        await connect(free_loopback_address())


async def test_a_fleet_curtails_every_miner_while_one_hangs() -> None:
    """50 miners put to sleep at once; the one whose API hangs is reported, and the others
    were asleep before its deadline passed."""
    fakes = list(await asyncio.gather(*(FakeLuxMiner.start() for _ in range(50))))
    try:
        fleet = Fleet(connect, timeout_s=3.0)
        found = await fleet.statuses([f.address for f in fakes])
        assert all(r.status is not None and r.status.hashing for r in found), found
        hung = fakes[17]
        hung.mute()

        started = time.monotonic()
        results = await fleet.apply([MinerTarget(f.address, MinerAction.SLEEP) for f in fakes])
        elapsed = time.monotonic() - started

        assert [r.target.address for r in results] == [f.address for f in fakes]
        failed = [r for r in results if not r.ok]
        assert [r.target.address for r in failed] == [hung.address]
        assert failed[0].detail == "no answer within 3 s"
        assert hung.hashing
        others = [f for f in fakes if f is not hung]
        assert not any(f.hashing for f in others)
        assert all(f.slept_at is not None and f.slept_at - started < 3.0 for f in others)
        assert elapsed < 3.0 + 2.0  # the hung miner held its own slot, no one else's
    finally:
        await asyncio.gather(*(f.stop() for f in fakes))


async def test_a_fleet_reports_each_miner_it_cannot_reach(fake: FakeLuxMiner) -> None:
    fleet = Fleet(connect, timeout_s=5.0)
    missing = free_loopback_address()
    results = await fleet.apply(
        [
            MinerTarget(fake.address, MinerAction.POWER, 2500),
            MinerTarget(missing, MinerAction.SLEEP),
        ]
    )
    assert results[0].ok
    assert results[0].done is MinerAction.POWER
    assert fake.profile == "340MHz"
    assert not results[1].ok
    assert "no miner that pyasic knows" in results[1].detail


async def test_a_fleet_takes_one_target_per_miner(fake: FakeLuxMiner) -> None:
    fleet = Fleet(connect)
    with pytest.raises(ValueError, match="one target per miner"):
        await fleet.apply(
            [
                MinerTarget(fake.address, MinerAction.SLEEP),
                MinerTarget(fake.address, MinerAction.RESUME),
            ]
        )
    assert fake.received == []
