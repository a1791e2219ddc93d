"""GPU nodes powered off while idle and woken for work: the power reconciler puts an idle node
with a BMC to standby, the site agent powers it off through Redfish (a fake BMC), and a
deployment that fits nowhere else wakes it; its replica lands on it once its agent is back."""

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from hashgrid.agent.bmc import Redfish
from hashgrid.agent.control_plane import ControlPlane
from hashgrid.agent.miners.fleet import Fleet
from hashgrid.agent.miners.follow import follow_orders
from hashgrid.agent.miners.pyasic_driver import connect
from hashgrid.client import HashgridClient

from support.fake_bmc import FakeBmc
from support.live import LiveServer, eventually, server_settings


@contextmanager
def _beating_while_powered(node: httpx.Client, bmc: FakeBmc) -> Iterator[None]:
    """The node's agent: it heartbeats while its machine is powered, as a real one would."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(0.5):
            if bmc.powered:
                node.post("/api/v1/agent/heartbeat", json={})

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def _site_with_a_bmc(admin: HashgridClient, bmc: FakeBmc, tiny_model: Path) -> None:
    """Site tx, whose node gpu-1 has `bmc`, and the tiny model in the catalog."""
    admin.create_site("tx", "us-south", "US", 1.0)
    admin.add_model("tiny", str(tiny_model), tiny_model.stat().st_size)
    power = {
        "gpus": {"bmcs": {"gpu-1": bmc.system_url}},
        "price": {"kind": "fixed", "usd_per_mwh": 30.0},
        "hashprice": {"kind": "constant", "usd_per_ph_day": 50.0},
    }
    admin.set_power("tx", power)


def _node(admin: HashgridClient, name: str) -> Any:
    return next(n for n in admin.list_nodes() if n.name == name)


async def test_an_idle_node_is_powered_off_and_woken_for_a_deployment(
    database_url: str, tmp_path: Path, tiny_model: Path
) -> None:
    settings = server_settings(tmp_path / "home", database_url, node_standby_after_s=1.0)
    server = LiveServer(settings)
    server.start()
    with (
        FakeBmc(username="admin", password="secret") as bmc,
        server.client() as admin,
    ):
        _site_with_a_bmc(admin, bmc, tiny_model)
        controller = server.join_node("tx", "controller")  # the site agent's own node
        admin.cordon(controller.headers["x-node-id"])  # it serves no replica here
        gpu = server.join_node("tx", "gpu-1")
        control_plane = ControlPlane(server.url, controller.headers["authorization"][7:])
        redfish = Redfish("admin", "secret")
        stop = asyncio.Event()
        loop = asyncio.create_task(follow_orders(stop, control_plane, Fleet(connect), redfish, 2.0))
        try:
            with _beating_while_powered(gpu, bmc):
                await eventually(lambda: not bmc.powered, "the idle node powered off", 30.0)
                assert bmc.resets == ["GracefulShutdown"]
                assert _node(admin, "gpu-1").power == "standby"
                await eventually(lambda: _node(admin, "gpu-1").status == "lost", "it is gone", 30.0)
                miners = admin.get_power("tx").miners
                assert miners is not None
                assert miners.nodes == {"gpu-1": "off"}

                deployment = admin.deploy("tiny", name="chat", replicas=1)
                await eventually(lambda: bmc.powered, "the node woken for the replica", 30.0)
                assert bmc.resets == ["GracefulShutdown", "On"]
                await eventually(lambda: _node(admin, "gpu-1").power == "on", "it is back", 30.0)

                def placed() -> bool:
                    got = gpu.get("/api/v1/agent/assignments").json()["assignments"]
                    return [a["deployment"] for a in got] == [deployment.name]

                await eventually(placed, "the replica on the woken node", 30.0)
                assert _node(admin, "controller").power == "on"  # no BMC: never touched
        finally:
            stop.set()
            await control_plane.close()
            await asyncio.wait_for(loop, 10)
            await redfish.aclose()
            gpu.close()
            controller.close()
            server.stop()
