"""A site agent's miner loop against a live control plane and fake LuxOS miners that pyasic
drives: a curtailment sleeps miners, a restore wakes them, and the results reach operators."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from hashgrid.agent.bmc import Redfish
from hashgrid.agent.control_plane import ControlPlane
from hashgrid.agent.fingerprint import collect
from hashgrid.agent.miners.fleet import Fleet
from hashgrid.agent.miners.follow import follow_orders
from hashgrid.agent.miners.pyasic_driver import connect
from hashgrid.client import HashgridClient
from hashgrid.contracts.api.power import CurtailmentCreate, PowerModel
from hashgrid.contracts.api.sites import SiteCreate

from support.fake_miner import FakeLuxMiner
from support.live import LiveServer, eventually


@asynccontextmanager
async def _site_agent(
    server: LiveServer, admin: HashgridClient, addresses: list[str], **group: Any
) -> AsyncIterator[Callable[[dict[str, int]], Callable[[], bool]]]:
    """Site tx with one S21 group at `addresses` and a site agent following its miner orders;
    yields a check-maker: whether the agent's last report counts these actions."""
    admin.create_site(SiteCreate(name="tx", region="us-south", country="US", power_mw=1.0))
    admin.set_power(
        "tx",
        PowerModel.model_validate(
            {
                "asics": [{"model": "Antminer S21", "addresses": addresses, **group}],
                "gpus": {"idle_kw": 0},  # the controller node draws nothing to count
                "price": {"kind": "fixed", "usd_per_mwh": 30.0},
                "hashprice": {"kind": "constant", "usd_per_ph_day": 50.0},
            }
        ),
    )
    body = {
        "join_token": admin.create_join_token("tx").token,
        "name": "controller",
        "fingerprint": collect().model_dump(mode="json"),
    }
    with server.http(token=None) as http:
        joined: dict[str, Any] = http.post("/api/v1/agent/join", json=body).json()
    control_plane = ControlPlane(server.url, joined["credential"])
    redfish = Redfish()  # no node has a BMC here
    stop = asyncio.Event()
    loop = asyncio.create_task(follow_orders(stop, control_plane, Fleet(connect), redfish, 2.0))

    def reported(expected: dict[str, int]) -> Callable[[], bool]:
        def check() -> bool:
            miners = admin.get_power("tx").miners
            return miners is not None and miners.by_action == expected

        return check

    try:
        yield reported
    finally:
        stop.set()
        await control_plane.close()  # ends the poll in flight
        await asyncio.wait_for(loop, 10)
        await redfish.aclose()


async def test_site_agent_sleeps_and_wakes_miners_as_ordered(server: LiveServer) -> None:
    async with await FakeLuxMiner.start() as first, await FakeLuxMiner.start() as second:
        with server.client() as admin:
            async with _site_agent(server, admin, [first.address, second.address]) as reported:
                await eventually(reported({"resume": 2}), "both miners told to hash")
                # 4 kW left: one S21 (3.5 kW) keeps hashing, the other sleeps.
                admin.curtail("tx", CurtailmentCreate(target_mw=0.004, reason="drill"))
                await eventually(lambda: first.hashing and not second.hashing, "one asleep")
                await eventually(reported({"resume": 1, "sleep": 1}), "the report")
                assert second.watts == second.idle_watts

                admin.restore("tx")
                await eventually(lambda: first.hashing and second.hashing, "both awake")
                await eventually(reported({"resume": 2}), "the report after restore")
    server.stop()
    # The last report outlives the server.
    with LiveServer(server.settings, port=server.port) as again, again.client() as admin:
        miners = admin.get_power("tx").miners
        assert miners is not None
        assert miners.by_action == {"resume": 2}


async def test_power_control_sets_each_miner_a_power_target(server: LiveServer) -> None:
    """A group under `power` control: a curtailment to 5 kW sets both S21s to 2.5 kW, which
    LuxOS meets with its highest profile under it; still both hash. Restored, the plan sets them
    back to nameplate."""
    async with await FakeLuxMiner.start() as first, await FakeLuxMiner.start() as second:
        miners = (first, second)
        with server.client() as admin:
            addresses = [first.address, second.address]
            async with _site_agent(server, admin, addresses, control="power") as reported:
                await eventually(reported({"power": 2}), "both at nameplate")
                assert all(m.watts == 3500 and m.hashing for m in miners)
                admin.curtail("tx", CurtailmentCreate(target_mw=0.005, reason="drill"))
                await eventually(lambda: all(m.watts <= 2500 for m in miners), "both limited")
                assert all(m.hashing and m.watts > m.idle_watts for m in miners)
                admin.restore("tx")
                await eventually(lambda: all(m.watts == 3500 for m in miners), "nameplate")
