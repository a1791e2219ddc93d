"""A curtailment end to end (issue 6's check): under steady client load a grid event takes a
site down to less than its GPU node draws. The site agent sleeps the site's fake LuxOS miners
through pyasic, the flex replica moves from the site's real llama.cpp engine to one at another
site, and no client request fails; a restore wakes the miners, and the event log shows what was
shed and what it cost. Real agents, one control plane, one gateway, the `openai` client with
its own retries off."""

import asyncio
import contextlib
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import openai
import orjson
import pytest

from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.power import CurtailmentCreate, PowerModel
from hashgrid.contracts.api.sites import SiteCreate
from hashgrid.contracts.states import ReplicaStatus
from hashgrid.gateway.steering import SITE_HEADER

from support.fake_miner import FakeLuxMiner
from support.live import LiveFleet, admitted, wait_until
from support.load import Load

T = TypeVar("T")

PRICE_USD_PER_MWH = 30.0
S21_USD_PER_MWH = 50 * 1e3 / (17.5 * 24)  # hashprice $50/PH/day into 17.5 J/TH
MINERS = 4  # S21s: 3.5 kW each, 14 kW
BUSY_KW = 10.0  # a GPU node serving flex work
TARGET_MW = 0.005  # below the GPU node alone: every ASIC and the flex replica must go


class MinerRack:
    """Fake LuxOS miners answering on an event loop of their own thread, so that a synchronous
    test can block while the site agent (another process) drives them through pyasic."""

    def __init__(self, count: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.miners = [self._run(FakeLuxMiner.start()) for _ in range(count)]

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    @property
    def addresses(self) -> list[str]:
        return [m.address for m in self.miners]

    def hashing(self) -> list[bool]:
        return [m.hashing for m in self.miners]

    def close(self) -> None:
        for miner in self.miners:
            self._run(miner.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def test_a_curtailment_sheds_miners_moves_flex_work_with_no_failed_request_and_restores(
    tiny_model: Path, tmp_path: Path
) -> None:
    with contextlib.closing(MinerRack(MINERS)) as rack, LiveFleet(tmp_path) as fleet:
        admin, server = fleet.admin, fleet.server
        admin.create_site(SiteCreate(name="tx-west", region="us-south", country="US", power_mw=1.0))
        admin.create_site(SiteCreate(name="py-east", region="sa-east", country="PY", power_mw=1.0))
        admin.set_power(
            "tx-west",
            PowerModel.model_validate(
                {
                    "asics": [{"model": "Antminer S21", "addresses": rack.addresses}],
                    "gpus": {"busy_kw": BUSY_KW, "idle_kw": 2.0, "flex_usd_per_node_hour": 20.0},
                    "price": {"kind": "fixed", "usd_per_mwh": PRICE_USD_PER_MWH},
                    "hashprice": {"kind": "constant", "usd_per_ph_day": 50.0},
                }
            ),
        )
        admin.create_organization(OrganizationCreate(name="acme", kind="customer"))
        key = admin.create_key(KeyCreate(customer="acme")).key
        admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )

        # tx-west's GPU node is also its site agent (`--miners`): it drives the fake miners.
        fleet.add_agent("tx-west", "tx-gpu", extra_args=["--miners"])
        wait_until(lambda: len(admin.list_nodes()) == 1, 60, "the tx-west node")

        def reported(expected: dict[str, int]) -> bool:
            miners = admin.get_power("tx-west").miners
            return miners is not None and miners.by_action == expected and miners.failed == 0

        wait_until(lambda: reported({"resume": MINERS}), 60, "the site agent applying orders")
        assert all(rack.hashing())

        # The flex replica starts at tx-west because that is the only node when it is placed;
        # placement never moves a replica that still fits, so it stays there once py-east's
        # node joins (no regions to widen later, which would be a rolling change of its own).
        admin.deploy(DeploymentCreate(model="tiny", replicas=1, tier="flex"))
        gateway = fleet.start_gateway()
        routed = gateway
        wait_until(lambda: routed.ready_replicas("tiny") == 1, 90, "a routable replica")
        nodes = {n.name: n.id for n in admin.list_nodes()}
        (first,) = admin.get_deployment("tiny").replica_list
        assert (first.node_id, first.status) == (nodes["tx-gpu"], ReplicaStatus.READY)

        fleet.add_agent("py-east", "py-gpu")
        wait_until(lambda: admitted(admin) == 2, 60, "the py-east node admitted")
        nodes = {n.name: n.id for n in admin.list_nodes()}
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)

        def served_from() -> str:
            raw = client.chat.completions.with_raw_response.create(
                model="tiny", messages=[{"role": "user", "content": "where?"}], max_tokens=2
            )
            return raw.headers[SITE_HEADER]

        assert served_from() == "tx-west"

        with Load(client) as load:
            wait_until(lambda: load.answered >= 20, 30, "steady load")
            curtailed_at = time.monotonic()
            event = admin.curtail(
                "tx-west",
                CurtailmentCreate(target_mw=TARGET_MW, reason="ERCOT EEA2", source="grid"),
            )
            assert event.power_state == "curtailed"
            assert event.load_mw == pytest.approx(MINERS * 0.0035 + BUSY_KW / 1e3)
            assert event.asic_shed_mw == pytest.approx(MINERS * 0.0035)
            assert (event.flex_shed_mw, event.firm_shed_mw) == (pytest.approx(0.01), 0)

            wait_until(lambda: not any(rack.hashing()), 30, "every miner asleep")
            slept = [m.slept_at for m in rack.miners]
            asleep_s = max(s for s in slept if s is not None) - curtailed_at
            wait_until(lambda: reported({"sleep": MINERS}), 30, "the sleep reported")
            assert admin.get_power("tx-west").power_state == "curtailed"

            def moved() -> bool:
                replicas = admin.get_deployment("tiny").replica_list
                return [(r.node_id, r.status) for r in replicas] == [
                    (nodes["py-gpu"], ReplicaStatus.READY)
                ]

            wait_until(moved, 90, "the flex replica ready at py-east")
            wait_until(lambda: routed.ready_replicas("tiny") == 1, 30, "routing to it")
            serving_s = time.monotonic() - curtailed_at
            with server.http() as http:

                def stopped() -> list[str]:
                    params = {"deployment": "tiny", "status": "stopped"}
                    return [r["id"] for r in http.get("/api/v1/replicas", params=params).json()]

                wait_until(lambda: stopped() == [first.id], 30, "the old engine stopped")

            def gateway_view() -> dict[str, Any]:
                saved: dict[str, Any] = orjson.loads(routed.settings.view_path.read_bytes())
                return saved

            def routes() -> tuple[dict[str, str], list[str]]:
                """Sites in the gateway's view with their power state, and where `tiny` runs."""
                view = gateway_view()
                sites = {s["name"]: s["power_state"] for s in view["sites"]}
                (tiny,) = [m for m in view["models"] if m["name"] == "tiny"]
                return sites, [r["site"] for r in tiny["replicas"]]

            # The view lists only sites with a routable replica: tx-west, curtailed, has none.
            only_py = ({"py-east": "active"}, ["py-east"])
            wait_until(lambda: routes() == only_py, 10, "the gateway's view of the move")
            answered = load.answered
            wait_until(lambda: load.answered >= answered + 10, 30, "load served from py-east")
            assert served_from() == "py-east"
            moved_answered, moved_failed = load.answered, len(load.failures)
            moved_slowest_s = load.slowest_s

            restored_at = time.monotonic()
            ended = admin.restore("tx-west")
            assert (ended.id, ended.ended_at is not None) == (event.id, True)
            assert admin.get_power("tx-west").power_state == "active"
            wait_until(lambda: all(rack.hashing()), 30, "every miner hashing again")
            awake_s = time.monotonic() - restored_at
            wait_until(lambda: reported({"resume": MINERS}), 30, "the wake reported")
            assert routes() == only_py  # flex work need not move back
            answered = load.answered
            wait_until(lambda: load.answered >= answered + 10, 30, "load after the restore")

        print(
            f"curtailment: miners asleep {asleep_s:.2f} s after the POST, flex replica serving "
            f"at py-east {serving_s:.1f} s after it ({moved_answered} answered, {moved_failed} "
            f"failed by then, slowest answer {moved_slowest_s:.1f} s); miners hashing "
            f"{awake_s:.2f} s after the restore; "
            f"{load.answered} requests answered in all, {len(load.failures)} failed"
        )
        assert load.failures == [], load.failures[:5]
        # Nothing woke the replica back to tx-west's node: flex work need not move back.
        assert [r.node_id for r in admin.get_deployment("tiny").replica_list] == [nodes["py-gpu"]]

        history = admin.power_history("tx-west")
        (logged,) = history.curtailments
        assert logged.id == event.id
        assert (logged.source, logged.reason) == ("grid", "ERCOT EEA2")
        assert logged.asic_shed_mw == pytest.approx(MINERS * 0.0035)
        assert logged.flex_shed_mw == pytest.approx(0.01)
        assert logged.ended_at is not None
        hours = (logged.ended_at - logged.started_at).total_seconds() / 3600
        shed = logged.asic_shed_mw + logged.flex_shed_mw
        assert logged.energy_saved_usd == pytest.approx(shed * PRICE_USD_PER_MWH * hours)
        assert logged.mining_foregone_usd == pytest.approx(
            logged.asic_shed_mw * S21_USD_PER_MWH * hours
        )
        assert logged.mining_foregone_usd is not None
        assert logged.mining_foregone_usd > 0
        print(
            f"event: {logged.load_mw * 1e3:.1f} kW load, shed {logged.asic_shed_mw * 1e3:.1f} kW "
            f"ASIC + {logged.flex_shed_mw * 1e3:.1f} kW flex, energy not bought "
            f"${logged.energy_saved_usd:.6f}, mining foregone ${logged.mining_foregone_usd:.6f}"
        )
