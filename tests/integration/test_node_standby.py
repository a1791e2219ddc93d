"""GPU nodes powered off while idle and woken for work: the power reconciler puts an idle node
with a BMC to standby, the site agent powers it off through Redfish (a fake BMC), and a
deployment that fits nowhere else wakes it; its replica lands on it once its agent is back."""

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from hashgrid.agent.bmc import Redfish
from hashgrid.agent.control_plane import ControlPlane
from hashgrid.agent.miners.fleet import Fleet
from hashgrid.agent.miners.follow import follow_orders
from hashgrid.agent.miners.pyasic_driver import connect
from hashgrid.client import HashgridClient
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentChange, DeploymentCreate
from hashgrid.contracts.api.power import PowerModel
from hashgrid.contracts.api.sites import SiteCreate

from support.fake_bmc import DEFAULT_ALLOWED, FakeBmc
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
    admin.create_site(SiteCreate(name="tx", region="us-south", country="US", power_mw=1.0))
    admin.add_model(
        ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
    )
    power = {
        "gpus": {"bmcs": {"gpu-1": bmc.system_url}},
        "price": {"kind": "fixed", "usd_per_mwh": 30.0},
        "hashprice": {"kind": "constant", "usd_per_ph_day": 50.0},
    }
    admin.set_power("tx", PowerModel.model_validate(power))


@dataclass
class _Site:
    admin: HashgridClient
    gpu: httpx.Client  # speaks as node gpu-1

    def node(self, name: str = "gpu-1") -> Any:
        return next(n for n in self.admin.list_nodes() if n.name == name)

    def placed(self, deployment: str) -> Callable[[], bool]:
        def check() -> bool:
            got = self.gpu.get("/api/v1/agent/assignments").json()["assignments"]
            return [a["deployment"] for a in got] == [deployment]

        return check


@asynccontextmanager
async def _site(
    database_url: str, tmp_path: Path, tiny_model: Path, bmc: FakeBmc, standby_after_s: float = 1
) -> AsyncIterator[_Site]:
    """Site tx: a controller node following the site's orders (the site agent's loop) and node
    gpu-1, whose BMC is `bmc` and which heartbeats while `bmc` has it powered; the tiny model in
    the catalog. Idle nodes go to standby after `standby_after_s`."""
    settings = server_settings(
        tmp_path / "home", database_url, node_standby_after_s=standby_after_s
    )
    server = LiveServer(settings)
    server.start()
    with server.client() as admin:
        _site_with_a_bmc(admin, bmc, tiny_model)
        controller = server.join_node("tx", "controller")
        admin.cordon(controller.headers["x-node-id"])  # it serves no replica here
        gpu = server.join_node("tx", "gpu-1")
        control_plane = ControlPlane(server.url, controller.headers["authorization"][7:])
        redfish = Redfish("admin", "secret")
        stop = asyncio.Event()
        loop = asyncio.create_task(follow_orders(stop, control_plane, Fleet(connect), redfish, 2.0))
        try:
            with _beating_while_powered(gpu, bmc):
                yield _Site(admin, gpu)
        finally:
            stop.set()
            await control_plane.close()
            await asyncio.wait_for(loop, 10)
            await redfish.aclose()
            gpu.close()
            controller.close()
            server.stop()


async def test_an_idle_node_is_powered_off_and_woken_for_a_deployment(
    database_url: str, tmp_path: Path, tiny_model: Path
) -> None:
    with FakeBmc(username="admin", password="secret") as bmc:
        async with _site(database_url, tmp_path, tiny_model, bmc) as site:
            await eventually(lambda: not bmc.powered, "the idle node powered off", 30.0)
            assert bmc.resets == ["GracefulShutdown"]
            assert site.node().power == "standby"
            await eventually(lambda: site.node().status == "lost", "it is gone", 30.0)
            miners = site.admin.get_power("tx").miners
            assert miners is not None
            assert miners.nodes == {"gpu-1": "off"}

            site.admin.deploy(DeploymentCreate(model="tiny", name="chat", replicas=1))
            await eventually(lambda: bmc.powered, "the node woken for the replica", 30.0)
            assert bmc.resets == ["GracefulShutdown", "On"]
            await eventually(lambda: site.node().power == "on", "it is back", 30.0)
            await eventually(site.placed("chat"), "the replica on the woken node", 30.0)
            assert site.node("controller").power == "on"  # no BMC: never touched

            # idle again once its replica has gone
            site.admin.change_deployment("chat", DeploymentChange(replicas=0))
            await eventually(lambda: not bmc.powered, "powered off again", 30.0)
            assert bmc.resets == ["GracefulShutdown", "On", "GracefulShutdown"]


async def test_a_node_its_bmc_cannot_power_off_is_back_in_use(
    database_url: str, tmp_path: Path, tiny_model: Path
) -> None:
    """The BMC refuses every way off: the failure reaches the report and stays in view, and the
    node, still up, is `on` again at once, so a deployment's replica lands on it. Once the BMC
    obeys again, the node is powered off when idle, and its refusals in a row are forgotten."""
    with FakeBmc(username="admin", password="secret", allowed=("On",)) as bmc:
        async with _site(database_url, tmp_path, tiny_model, bmc, standby_after_s=3) as site:

            def failure_reported() -> bool:
                miners = site.admin.get_power("tx").miners
                return miners is not None and "failed" in (miners.nodes or {}).get("gpu-1", "")

            await eventually(lambda: site.node().power == "standby", "the idle node", 30.0)
            await eventually(failure_reported, "the BMC's refusal reported", 30.0)
            await eventually(lambda: site.node().power == "on", "it is back in use", 30.0)
            site.admin.deploy(DeploymentCreate(model="tiny", name="chat", replicas=1))
            await eventually(site.placed("chat"), "the replica on it", 30.0)
            assert (site.node().status, bmc.powered) == ("ready", True)
            assert failure_reported()  # later reports, without the node, leave it shown
            assert site.node().power_refusals >= 1  # each doubles the wait before the next try

            site.admin.change_deployment("chat", DeploymentChange(replicas=0))
            bmc.allowed = DEFAULT_ALLOWED
            await eventually(lambda: not bmc.powered, "powered off at last", 60.0)
            await eventually(lambda: site.node().power_refusals == 0, "refusals forgotten", 30.0)


async def test_a_node_powered_off_by_hand_is_woken_through_its_bmc(
    database_url: str, tmp_path: Path, tiny_model: Path
) -> None:
    """A node with a BMC that is lost while hashgrid had it on (someone pulled its power) is
    powered on when work needs it, and takes the work."""
    with FakeBmc(username="admin", password="secret") as bmc:
        async with _site(database_url, tmp_path, tiny_model, bmc, 3600) as site:
            site.admin.deploy(DeploymentCreate(model="tiny", name="chat", replicas=1))
            await eventually(site.placed("chat"), "the replica on gpu-1", 30.0)
            bmc.powered = False  # by hand: no Redfish call
            await eventually(lambda: site.node().status == "lost", "it is gone", 30.0)
            await eventually(lambda: bmc.powered, "powered on for the replica", 30.0)
            assert bmc.resets == ["On"]
            await eventually(site.placed("chat"), "a replica on it again", 30.0)
            assert site.node().power == "on"
