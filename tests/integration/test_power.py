"""Site power: curtailments shed ASICs first, then flex replicas, with costs logged; restore;
plans per interval; power state reaching placement and the gateway view; miner orders."""

import itertools
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from hashgrid.client import ApiError, HashgridClient
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.power import CurtailmentCreate, IntervalOut, PowerModel, SitePowerOut
from hashgrid.contracts.api.sites import SiteCreate
from hashgrid.energy_data import CENTRAL, ERCOT_ANCILLARY, ERCOT_PRICES
from hashgrid.server.power.gpu_power import DEFAULT_BUSY_KW

from support.data import DATA
from support.live import LiveServer, server_settings, wait_until

S21_USD_PER_MWH = 50 * 1e3 / (17.5 * 24)  # hashprice $50/PH/day into 17.5 J/TH
MINERS = [f"10.0.0.{i}" for i in range(1, 5)]  # 4 S21s: 14 kW
POWER = {
    "asics": [{"model": "Antminer S21", "addresses": MINERS}],
    "gpus": {"busy_kw": 10.0, "idle_kw": 2.0, "firm_usd_per_node_hour": 30.0},
    "price": {"kind": "fixed", "usd_per_mwh": 30.0},
    "hashprice": {"kind": "constant", "usd_per_ph_day": 50.0},
}


def _serve(node: httpx.Client, deployment: str) -> str:
    """Wait for a replica of `deployment` on `node` and report it ready; its id."""

    def placed() -> list[str]:
        got = node.get("/api/v1/agent/assignments").json()["assignments"]
        return [a["replica_id"] for a in got if a["deployment"] == deployment]

    replica: str = wait_until(placed, 20, f"{deployment} placed")[0]
    ready = {"status": "ready", "endpoint": f"http://127.0.0.1:9/{replica}"}
    assert node.put(f"/api/v1/agent/replicas/{replica}/state", json=ready).status_code == 200
    return replica


def _orders(node: httpx.Client) -> dict[str, Any]:
    got: dict[str, Any] = node.get("/api/v1/agent/miners").json()
    return got


def _site_states(server: LiveServer) -> dict[str, str]:
    with server.http() as http:
        view = http.get("/api/v1/gateway/view").json()
    return {s["name"]: s["power_state"] for s in view["sites"]}


def _two_sites(admin: HashgridClient, tiny_model: Path, power: dict[str, Any]) -> SitePowerOut:
    """Sites tx (with `power`) and ok, and the tiny model in the catalog; tx's power."""
    admin.create_site(SiteCreate(name="tx", region="us-south", country="US", power_mw=1.0))
    admin.create_site(SiteCreate(name="ok", region="us-central", country="US", power_mw=1.0))
    out = admin.set_power("tx", PowerModel.model_validate(power))
    admin.add_model(
        ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
    )
    return out


def test_curtailment_sheds_asics_then_flex_and_restores(
    server: LiveServer, tiny_model: Path
) -> None:
    with server.client() as admin:
        power = _two_sites(admin, tiny_model, POWER)
        assert power.model is not None
        assert power.model.asics[0].th_s == 200  # from the nameplate

        firm_node = server.join_node("tx", "firm-rig")
        admin.deploy(DeploymentCreate(model="tiny", name="chat", replicas=1, tier="firm"))
        _serve(firm_node, "chat")
        admin.cordon(firm_node.headers["x-node-id"])  # so the flex replica gets its own node
        flex_node = server.join_node("tx", "flex-rig")
        admin.deploy(DeploymentCreate(model="tiny", name="batch", replicas=1, tier="flex"))
        flex_replica = _serve(flex_node, "batch")
        elsewhere = server.join_node("ok", "ok-rig")
        assert _orders(firm_node)["orders"] == [
            {"address": a, "action": "resume", "watts": None} for a in MINERS
        ]

        # Load: 14 kW of ASICs + 10 kW firm + 10 kW flex. To 25 kW: ASICs alone give way,
        # keeping one S21 (3.5 kW of the 5 kW left); nothing moves.
        first = admin.curtail(
            "tx", CurtailmentCreate(target_mw=0.025, reason="price spike", source="grid")
        )
        assert (first.load_mw, first.power_state) == (pytest.approx(0.034), "active")
        assert first.asic_shed_mw == pytest.approx(0.0105)
        assert (first.flex_shed_mw, first.firm_shed_mw) == (0, 0)
        orders = _orders(firm_node)
        assert orders["reason"].startswith(f"curtailment {first.id[:8]}")
        assert [o["action"] for o in orders["orders"]] == ["resume", "sleep", "sleep", "sleep"]

        # To 11 kW: every ASIC, then flex; firm (10 kW) fits and stays.
        second = admin.curtail(
            "tx", CurtailmentCreate(target_mw=0.011, reason="grid emergency", source="grid")
        )
        assert second.power_state == "curtailed"
        assert (second.asic_shed_mw, second.flex_shed_mw) == (pytest.approx(0.014), 0.01)
        assert second.firm_shed_mw == 0
        assert admin.get_power("tx").power_state == "curtailed"
        assert {o["action"] for o in _orders(firm_node)["orders"]} == {"sleep"}
        moved = _serve(elsewhere, "batch")  # the flex replica is placed at the other site
        assert moved != flex_replica
        assert all(
            a["deployment"] != "batch"
            for a in flex_node.get("/api/v1/agent/assignments").json()["assignments"]
        )
        assert [
            a["deployment"]
            for a in firm_node.get("/api/v1/agent/assignments").json()["assignments"]
        ] == ["chat"]  # firm stays
        assert wait_until(lambda: _site_states(server).get("tx") == "curtailed", 10, "the view")
        assert _site_states(server)["ok"] == "active"

        ended = admin.restore("tx")
        assert ended.ended_at is not None
        assert ended.id == second.id
        assert admin.get_power("tx").power_state == "active"
        assert {o["action"] for o in _orders(firm_node)["orders"]} == {"resume"}
        with pytest.raises(ApiError) as nothing:
            admin.restore("tx")
        assert nothing.value.status == 409

        history = admin.power_history("tx")
        assert [c.id for c in history.curtailments] == [second.id, first.id]
        for event in history.curtailments:  # both ended, with their costs
            assert event.status == "ended"
            assert event.ended_at is not None
            assert event.started_at is not None
            hours = (event.ended_at - event.started_at).total_seconds() / 3600
            shed = event.asic_shed_mw + event.flex_shed_mw + event.firm_shed_mw
            assert event.energy_saved_usd == pytest.approx(shed * 30.0 * hours)
            assert event.mining_foregone_usd == pytest.approx(
                event.asic_shed_mw * S21_USD_PER_MWH * hours
            )
            assert event.mining_foregone_usd > 0
        for client in (firm_node, flex_node, elsewhere):
            client.close()


def test_gpu_nodes_draw_what_nvml_reports_where_the_model_gives_no_figure(
    server: LiveServer, tiny_model: Path
) -> None:
    """No `busy_kw` in the model: a node whose two GPUs NVML limits to 350 W draws 0.7 kW plus
    the 1.5 kW host busy, and a curtailment counts its firm replica at that."""
    model = {**POWER, "gpus": {"idle_kw": 1.0, "firm_usd_per_node_hour": 30.0}}
    with server.client() as admin:
        power = _two_sites(admin, tiny_model, model)
        assert (power.gpu_busy_kw, power.gpu_busy_from) == (
            DEFAULT_BUSY_KW,
            "default: no ready node reports its GPUs' power limits",
        )
        gpus = [
            {"index": i, "uuid": f"GPU-{i}", "name": "NVIDIA L40S", "memory_total_bytes": 48 << 30,
             "memory_free_bytes": 47 << 30, "power_draw_w": 35.0, "power_limit_w": 350.0}
            for i in range(2)
        ]  # fmt: skip
        node = server.join_node("tx", "rig", gpus=gpus)
        power = admin.get_power("tx")
        assert power.gpu_busy_kw == pytest.approx(2.2)
        assert power.gpu_busy_from == "NVML power limits of 1 node, plus 1.5 kW host"

        admin.deploy(DeploymentCreate(model="tiny", name="chat", replicas=1, tier="firm"))
        _serve(node, "chat")
        event = admin.curtail("tx", CurtailmentCreate(target_mw=0.01, reason="drill"))
        assert event.load_mw == pytest.approx(0.014 + 0.0022)  # ASICs and the busy node
        node.close()


def test_stop_everything_drains_the_site(server: LiveServer, tiny_model: Path) -> None:
    """Target 0: ASICs, flex and firm all go; the site is draining and every replica moves."""
    with server.client() as admin:
        _two_sites(admin, tiny_model, POWER)
        rig = server.join_node("tx", "rig")
        admin.deploy(DeploymentCreate(model="tiny", name="chat", replicas=1, tier="firm"))
        _serve(rig, "chat")
        elsewhere = server.join_node("ok", "ok-rig")
        stop = admin.curtail("tx", CurtailmentCreate(target_mw=0, reason="stop everything now"))
        assert stop.power_state == "draining"
        assert stop.firm_shed_mw == 0.01
        _serve(elsewhere, "chat")
        rig.close()
        elsewhere.close()


def test_flex_work_leaves_a_site_in_hours_its_power_costs_more_than_flex_earns(
    server: LiveServer, tiny_model: Path
) -> None:
    """The hour's plan, not only a curtailment, moves flex replicas: at $5,000/MWh a flex
    node-hour ($10 for 10 kW: $1,000/MWh) does not pay, so the site pauses flex work: the flex
    replica is placed at the other site, a firm one still at this site. At $30 it is active."""
    flex_pays = {**POWER, "gpus": {**POWER["gpus"], "flex_usd_per_node_hour": 10.0}}
    spike = {**flex_pays, "price": {"kind": "time_of_use", "usd_per_mwh": [5000.0] * 24}}
    with server.client() as admin:
        _two_sites(admin, tiny_model, flex_pays)
        rig = server.join_node("tx", "rig")
        admin.deploy(DeploymentCreate(model="tiny", name="batch", replicas=1, tier="flex"))
        first = _serve(rig, "batch")
        elsewhere = server.join_node("ok", "ok-rig")

        admin.set_power("tx", PowerModel.model_validate(spike))
        moved = _serve(elsewhere, "batch")
        assert moved != first
        assert admin.get_power("tx").power_state == "flex_paused"
        admin.deploy(
            DeploymentCreate(
                model="tiny", name="chat", replicas=1, regions=["us-south"], tier="firm"
            )
        )
        _serve(rig, "chat")  # firm work is still placed at the site, and routed to
        wait_until(lambda: _site_states(server).get("tx") == "flex_paused", 10, "the view")
        hour = admin.power_history("tx").plans[0]
        assert hour.flex_paused
        assert hour.applied
        assert hour.price_usd_per_mwh == 5000.0
        assert admin.power_plan("tx", hours=2).intervals[1].flex_paused

        admin.set_power("tx", PowerModel.model_validate(flex_pays))
        wait_until(lambda: admin.get_power("tx").power_state == "active", 20, "active again")
        assert not admin.power_history("tx").plans[0].flex_paused
        rig.close()
        elsewhere.close()


def _deadline(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def test_a_deadline_schedules_the_curtailment_a_lead_before_it(
    database_url: str, tmp_path: Path
) -> None:
    """`by` 6 s ahead, ASICs alone to shed, a 1 s ASIC lead: the curtailment is scheduled and
    the miners keep hashing; the power reconciler begins it when due, not before."""
    settings = server_settings(tmp_path / "home", database_url, curtail_asic_lead_s=1.0)
    with LiveServer(settings) as server:
        with server.client() as admin:
            admin.create_site(SiteCreate(name="tx", region="us-south", country="US", power_mw=1.0))
            admin.set_power("tx", PowerModel.model_validate(POWER))
            rig = server.join_node("tx", "rig")  # idle: 2 kW
            # Load 16 kW; 9 kW leaves 7 kW for ASICs: two of the four S21s keep hashing.
            event = admin.curtail(
                "tx",
                CurtailmentCreate(
                    target_mw=0.009, reason="ERCOT EEA1", source="grid", by=_deadline(6)
                ),
            )
            assert (event.status, event.started_at) == ("scheduled", None)
            assert event.starts_at == event.by - timedelta(seconds=1)
            assert (event.asic_shed_mw, event.power_state) == (pytest.approx(0.007), "active")
            power = admin.get_power("tx")
            assert power.curtailment is not None
            assert (power.curtailment.id, power.curtailment.status) == (event.id, "scheduled")
            assert {o["action"] for o in _orders(rig)["orders"]} == {"resume"}

            def begun() -> Any:
                current = admin.get_power("tx").curtailment
                return current if current is not None and current.status == "in_force" else None

            started = wait_until(begun, 20, "the curtailment in force")
            assert started.started_at is not None
            assert started.started_at >= started.starts_at
            orders = _orders(rig)
            assert orders["reason"].startswith(f"curtailment {event.id[:8]}")
            assert [o["action"] for o in orders["orders"]] == ["resume", "resume", "sleep", "sleep"]
            # Costs count from when shedding began.
            ended = admin.restore("tx")
            assert ended.status == "ended"
            assert ended.ended_at is not None
            hours = (ended.ended_at - started.started_at).total_seconds() / 3600
            assert ended.energy_saved_usd == pytest.approx(0.007 * 30.0 * hours)
        rig.close()


def test_a_past_deadline_is_obeyed_at_once(server: LiveServer) -> None:
    with server.client() as admin:
        admin.create_site(SiteCreate(name="tx", region="us-south", country="US", power_mw=1.0))
        admin.set_power("tx", PowerModel.model_validate(POWER))
        event = admin.curtail(
            "tx", CurtailmentCreate(target_mw=0.0, by="2026-01-01T08:00:00+01:00")
        )
        assert event.status == "in_force"
        assert event.started_at == event.starts_at
        assert event.by == datetime(2026, 1, 1, 7, tzinfo=UTC)
        assert admin.get_power("tx").power_state == "active"  # no GPU node: ASICs alone


def test_restore_cancels_a_scheduled_curtailment_and_a_new_one_replaces_it(
    server: LiveServer,
) -> None:
    """A scheduled curtailment is replaced (cancelled) by a new one, and cancelled by restore;
    one in force hands over at once to a new one, whatever its deadline, so the site never
    rises in between."""
    with server.client() as admin:
        admin.create_site(SiteCreate(name="tx", region="us-south", country="US", power_mw=1.0))
        admin.set_power("tx", PowerModel.model_validate(POWER))
        first = admin.curtail("tx", CurtailmentCreate(target_mw=0.007, by=_deadline(3600)))
        second = admin.curtail("tx", CurtailmentCreate(target_mw=0.0035, by=_deadline(7200)))
        assert (first.status, second.status) == ("scheduled", "scheduled")
        cancelled = admin.restore("tx")
        assert (cancelled.id, cancelled.status) == (second.id, "cancelled")
        assert (cancelled.energy_saved_usd, cancelled.mining_foregone_usd) == (None, None)
        assert admin.get_power("tx").curtailment is None
        with pytest.raises(ApiError) as nothing:
            admin.restore("tx")
        assert nothing.value.status == 409

        now = admin.curtail("tx", CurtailmentCreate(target_mw=0.007))
        assert now.status == "in_force"
        later = admin.curtail("tx", CurtailmentCreate(target_mw=0.0035, by=_deadline(3600)))
        assert later.status == "in_force"  # took over from the one in force
        statuses = {c.id: c.status for c in admin.power_history("tx").curtailments}
        assert statuses == {
            first.id: "cancelled",
            second.id: "cancelled",
            now.id: "ended",
            later.id: "in_force",
        }


def test_miners_come_back_from_a_curtailment_no_faster_than_the_ramp_limit(
    server: LiveServer,
) -> None:
    """A ramp limit of one S21 (3.5 kW) per hour: a curtailment sleeps every miner at once, and
    when it ends the hour's plan brings back one S21, not all four."""
    ramped = {**POWER, "asic_ramp_mw_per_h": 0.0035}
    with server.client() as admin:
        admin.create_site(SiteCreate(name="tx", region="us-south", country="US", power_mw=1.0))
        admin.set_power("tx", PowerModel.model_validate(ramped))
        agent = server.join_node("tx", "site-agent")  # idle: 2 kW, firm tier

        def actions() -> list[str]:
            return [o["action"] for o in _orders(agent)["orders"]]

        def now() -> IntervalOut:
            return admin.power_history("tx", limit=1).plans[0]

        wait_until(lambda: actions() == ["resume"] * 4, 20, "the plan's full load")

        admin.curtail(
            "tx", CurtailmentCreate(target_mw=0.002, reason="grid emergency", source="grid")
        )
        assert actions() == ["sleep"] * 4  # at once, whatever the limit
        wait_until(lambda: now().mining_mw == pytest.approx(0.0035), 20, "the plan from 0 MW")
        assert not now().applied

        admin.restore("tx")
        assert actions() == ["resume", "sleep", "sleep", "sleep"]
        wait_until(lambda: now().applied, 20, "the plan applied")
        assert now().mining_mw == pytest.approx(0.0035)
        agent.close()


def test_curtailments_that_race_leave_one_open(server: LiveServer) -> None:
    """Requests for one site at the same instant are taken one after the other: each replaces
    the one before, and exactly one stays open."""
    with server.client() as admin:
        admin.create_site(SiteCreate(name="tx", region="us-south", country="US", power_mw=1.0))
        admin.set_power("tx", PowerModel.model_validate(POWER))

    def one(target_mw: float) -> str:
        with server.client() as client:
            return client.curtail("tx", CurtailmentCreate(target_mw=target_mw)).id

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(one, [0.001 * i for i in range(8)]))
    with server.client() as admin:
        events = admin.power_history("tx").curtailments
        assert {e.id for e in events} == ids
        assert [e.status for e in events].count("in_force") == 1
        assert admin.get_power("tx").curtailment is not None


def test_plan_gives_hourly_intervals(server: LiveServer) -> None:
    with server.client() as admin:
        admin.create_site(SiteCreate(name="tx", region="us-south", country="US", power_mw=1.0))
        admin.set_power("tx", PowerModel.model_validate(POWER))
        plan = admin.power_plan("tx", hours=6)
        assert len(plan.intervals) == 6
        hour = plan.intervals[0]
        # Mining pays ($119/MWh against $30), so every S21 hashes; no GPU node has joined.
        assert hour.mining_mw == pytest.approx(0.014)
        assert hour.mining_usd == pytest.approx(0.014 * S21_USD_PER_MWH)
        assert hour.energy_usd == pytest.approx(0.014 * 30.0)
        assert (hour.inference_mw, hour.offered_mw) == (0, 0)
        # The reconciler stores the current hour's plan, applied.
        stored = wait_until(lambda: admin.power_history("tx").plans, 20, "a stored plan")
        assert stored[0].applied
        assert stored[0].mining_mw == pytest.approx(0.014)


def test_plan_reads_an_ercot_series(server: LiveServer, tmp_path: Path) -> None:
    """A price series in ERCOT's layout plans an hour it covers, at the UTC hour its Central
    time hour falls in; an hour it lacks is a 400."""
    prices = tmp_path / "prices.csv"
    rows = ["delivery_date,hour_ending,dam_LZ_WEST,rtm_LZ_WEST"]
    rows += [f"2025-05-31,{h},{20 + h},{25 + h}" for h in range(1, 25)]
    for day in range(1, 31):
        rows += [f"2025-06-{day:02d},{h},{20 + h},{25 + h}" for h in range(1, 25)]
    for day in range(1, 4):
        rows += [f"2025-07-{day:02d},{h},{20 + h},{500 if h == 18 else 25}" for h in range(1, 25)]
    prices.write_text("\n".join(rows) + "\n")
    with server.client() as admin:
        admin.create_site(SiteCreate(name="tx", region="us-south", country="US", power_mw=1.0))
        ercot = {**POWER, "price": {"kind": "ercot", "path": str(prices), "point": "LZ_WEST"}}
        admin.set_power("tx", PowerModel.model_validate(ercot))
        plan = admin.power_plan("tx", hours=24, start="2025-07-02T00:00:00Z")
        assert [i.start for i in plan.intervals][:2] == [
            datetime.fromisoformat("2025-07-02T00:00:00+00:00"),
            datetime.fromisoformat("2025-07-02T01:00:00+00:00"),
        ]
        # Hour ending 18 of 2 July, Central daylight time (UTC-5), is 22:00-23:00 UTC.
        assert plan.intervals[22].price_usd_per_mwh == 500
        assert plan.intervals[17].price_usd_per_mwh == 25
        with pytest.raises(ApiError) as gap:
            admin.power_plan("tx", hours=24, start="2025-07-03T12:00:00Z")
        assert gap.value.status == 400
        assert "no LZ_WEST price" in gap.value.detail


def test_a_15_minute_series_plans_and_orders_every_quarter_hour(
    server: LiveServer, tmp_path: Path
) -> None:
    """ERCOT's real-time prices settle every 15 minutes. With a 15-minute series the plan has
    quarter-hour intervals at their own prices, and the miners follow the stored plan of the
    current quarter hour; a series whose rows do not match its `interval_min` is refused."""
    today = datetime.now(CENTRAL).date()
    rows = ["delivery_date,hour_ending,delivery_interval,dam_LZ_WEST,rtm_LZ_WEST"]
    for d in range(-33, 3):
        day = today + timedelta(days=d)
        midnight = [datetime.combine(day + timedelta(days=n), time(), CENTRAL) for n in (0, 1)]
        hours = (midnight[1] - midnight[0].astimezone(UTC)) // timedelta(hours=1)  # 23-25
        quarters = [(h, q) for h in range(1, hours + 1) for q in range(1, 5)]
        rows += [f"{day},{h},{q},30,{20 + 5 * q}" for h, q in quarters]
    prices = tmp_path / "prices-15min.csv"
    prices.write_text("\n".join(rows) + "\n")
    source = {"kind": "ercot", "path": str(prices), "point": "LZ_WEST", "interval_min": 15}
    with server.client() as admin:
        admin.create_site(SiteCreate(name="tx", region="us-south", country="US", power_mw=1.0))
        admin.set_power("tx", PowerModel.model_validate({**POWER, "price": source}))
        plan = admin.power_plan("tx", hours=2)
        starts = [i.start for i in plan.intervals]
        assert len(starts) == 8
        assert {b - a for a, b in itertools.pairwise(starts)} == {timedelta(minutes=15)}
        assert {i.hours for i in plan.intervals} == {0.25}
        for i in plan.intervals:  # quarter q of each hour costs 20 + 5q
            assert i.price_usd_per_mwh == 25 + 5 * (i.start.minute // 15)

        agent = server.join_node("tx", "site-agent")
        reason = wait_until(
            lambda: (r := _orders(agent)["reason"]).startswith("plan of ") and r, 20, "a plan"
        )
        stored = admin.power_history("tx", limit=1).plans[0]
        assert stored.hours == 0.25
        assert reason == f"plan of {stored.start:%Y-%m-%d %H:%M} UTC"
        assert stored.start.minute % 15 == 0
        agent.close()

        with pytest.raises(ApiError) as wrong:
            admin.set_power(
                "tx", PowerModel.model_validate({**POWER, "price": {**source, "interval_min": 60}})
            )
        assert wrong.value.status == 400
        assert "give interval_min 15" in wrong.value.detail


def test_plan_offers_asic_load_at_ercot_ancillary_prices(server: LiveServer) -> None:
    """With ERCOT's LZ_WEST prices and ECRS prices (the shared data set), the plan offers the
    site's cap of ASIC load in an hour whose ECRS price beats the risk of running through a
    price spike, and nothing in a cheap one."""
    ercot = {
        **POWER,
        "price": {"kind": "ercot", "path": str(DATA / ERCOT_PRICES), "point": "LZ_WEST"},
        "ancillary": {
            "mw": 0.01,  # of the 14 kW of S21s
            "price": {"kind": "ercot", "path": str(DATA / ERCOT_ANCILLARY), "product": "ecrs"},
        },
    }
    with server.client() as admin:
        admin.create_site(SiteCreate(name="tx", region="us-south", country="US", power_mw=1.0))
        model = admin.set_power("tx", PowerModel.model_validate(ercot)).model
        assert model is not None
        assert model.ancillary is not None
        assert model.ancillary.mw == 0.01
        plan = admin.power_plan("tx", hours=24, start="2024-08-20T00:00:00Z")
        # Hour ending 21 of 19 August 2024 (CDT), 01:00-02:00 UTC on the 20th: ECRS $315.83.
        spike = plan.intervals[1]
        assert spike.offered_mw == pytest.approx(0.01)
        assert spike.ancillary_usd == pytest.approx(0.01 * 315.83)
        # Energy at $414/MWh is above the S21s' worth: only the offered load keeps hashing.
        assert (spike.price_usd_per_mwh, spike.mining_mw) == (414.505, 0.01)
        # Hour ending 8 of the 20th, 12:00 UTC: ECRS $0.07 does not pay for the risk.
        assert (plan.intervals[12].offered_mw, plan.intervals[12].ancillary_usd) == (0, 0)


def test_the_stored_plan_offers_load_the_grid_may_call(server: LiveServer) -> None:
    """A constant ancillary price on a fixed tariff: this hour's stored plan offers the cap, and
    a grid call for the offered MW sheds ASICs only, least efficient first."""
    offer = {**POWER, "ancillary": {"mw": 0.007, "price": {"kind": "constant", "usd_per_mw_h": 5}}}
    with server.client() as admin:
        admin.create_site(SiteCreate(name="tx", region="us-south", country="US", power_mw=1.0))
        admin.set_power("tx", PowerModel.model_validate(offer))
        stored = wait_until(lambda: admin.power_history("tx").plans, 20, "a stored plan")
        assert (stored[0].offered_mw, stored[0].ancillary_usd) == (0.007, pytest.approx(0.035))
        assert stored[0].mining_mw == pytest.approx(0.014)
        called = admin.curtail(
            "tx", CurtailmentCreate(target_mw=0.014 - 0.007, reason="ECRS deployed", source="grid")
        )
        assert called.asic_shed_mw == pytest.approx(0.007)  # two of the four S21s sleep
        assert (called.flex_shed_mw, called.firm_shed_mw, called.power_state) == (0, 0, "active")


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/v1/sites/nowhere/curtailments", {"target_mw": 1}, 404),
        ("/api/v1/sites/tx/curtailments", {"target_mw": -1}, 422),
        ("/api/v1/sites/tx/curtailments", {"target_mw": 1, "source": "moon"}, 422),
        ("/api/v1/sites/tx/curtailments", {"target_mw": 1, "by": "2026-11-21T08:00:00"}, 400),
        ("/api/v1/sites/tx/curtailments", {"target_mw": 1, "by": "tomorrow"}, 422),
    ],
)
def test_bad_curtailments_change_nothing(
    server: LiveServer, path: str, body: dict[str, Any], status: int
) -> None:
    with server.client() as admin, server.http() as http:
        admin.create_site(SiteCreate(name="tx", region="us-south", country="US", power_mw=1.0))
        admin.set_power("tx", PowerModel.model_validate(POWER))
        answer = http.post(path, json=body)
        assert answer.status_code == status
        assert answer.headers["content-type"] == "application/problem+json"
        assert admin.power_history("tx").curtailments == []
        assert admin.get_power("tx").power_state == "active"


def test_bad_power_models_are_refused(server: LiveServer, tmp_path: Path) -> None:
    with server.client() as admin, server.http() as http:
        admin.create_site(SiteCreate(name="tx", region="us-south", country="US", power_mw=1.0))
        unknown = {**POWER, "asics": [{"model": "Mystery 9000", "count": 3}]}
        assert http.put("/api/v1/sites/tx/power", json=unknown).status_code == 422
        missing = {**POWER, "hashprice": {"kind": "series", "path": str(tmp_path / "none.csv")}}
        assert http.put("/api/v1/sites/tx/power", json=missing).status_code == 400
        ancillary = {"kind": "ercot", "path": str(DATA / ERCOT_ANCILLARY), "product": "ecrs"}
        for offer, status in [
            ({"mw": 1, "price": {**ancillary, "product": "spinning"}}, 422),
            ({"mw": -1, "price": ancillary}, 422),
            ({"mw": 1, "price": {**ancillary, "path": str(tmp_path / "none.csv")}}, 400),
        ]:
            answer = http.put("/api/v1/sites/tx/power", json={**POWER, "ancillary": offer})
            assert answer.status_code == status
            assert answer.headers["content-type"] == "application/problem+json"
        assert admin.get_power("tx").model is None
        with pytest.raises(ApiError) as no_model:
            admin.curtail("tx", CurtailmentCreate(target_mw=0))
        assert no_model.value.status == 409
