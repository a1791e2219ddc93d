"""`POST /api/v1/gateway/spot-checks` on SQLite and PostgreSQL: each result is stored once by its
id (a gateway resends a batch after any failure), and a node is quarantined on the batch that
brings its mismatches to the rule's count among its latest checks, not before. And the score a
node's usage records give it (failed and slow requests), and its site's."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hashgrid.contracts.api.access import TokenCreate
from hashgrid.contracts.api.common import ReliabilityOut
from hashgrid.contracts.api.sites import SiteCreate
from hashgrid.contracts.spotchecks import SpotCheckAck

from support.live import LiveServer, server_settings, wait_until

NOW = datetime.now(UTC)


def result(check_id: str, node_id: str, passed: bool, age_s: float = 0) -> dict[str, Any]:
    return {
        "check_id": check_id, "request_id": f"req-{check_id}", "model": "tiny",
        "node_id": node_id, "replica_id": "r1", "reference_node_id": "trusted",
        "reference_replica_id": "r0", "mode": "exact", "agreement": 1.0 if passed else 0.1,
        "passed": passed, "checked_at": (NOW - timedelta(seconds=age_s)).isoformat(),
    }  # fmt: skip


def test_spot_checks_are_stored_once_and_repeated_mismatches_quarantine(
    server: LiveServer,
) -> None:
    with server.client() as admin:
        admin.create_site(SiteCreate(name="mine", region="us", country="US", power_mw=1.0))
        gateway_token = admin.create_token(TokenCreate(name="gw", role="gateway")).token
    node = server.join_node("mine", "rig")  # verified and admitted, as its agent would be
    node_id = node.headers["x-node-id"]
    node.close()

    def post(results: list[dict[str, Any]]) -> SpotCheckAck:
        with server.http(token=gateway_token) as gw:
            r = gw.post("/api/v1/gateway/spot-checks", json={"results": results})
        assert r.status_code == 200, r.text
        return SpotCheckAck.model_validate(r.json())

    # The default rule: 3 mismatches among the latest 10. Old passes do not dilute new failures.
    first = [result(f"ok{i}", node_id, True, age_s=100 + i) for i in range(8)]
    first += [result("bad1", node_id, False, 5), result("bad2", node_id, False, 4)]
    assert post(first) == SpotCheckAck(accepted=10, duplicates=0, quarantined=[])
    assert post(first) == SpotCheckAck(accepted=0, duplicates=10, quarantined=[])
    with server.client() as admin:
        assert admin.get_node("rig").admission == "admitted"

    ack = post([result("bad2", node_id, False, 4), result("bad3", node_id, False, 1)])
    assert ack == SpotCheckAck(accepted=1, duplicates=1, quarantined=[node_id])
    with server.client() as admin:
        rig = admin.get_node("rig")
    assert rig.admission == "quarantined"
    assert rig.admission_reason is not None
    assert rig.admission_reason.startswith("3 of its last 10 spot-checks disagreed")
    # Quarantined already: more failures change nothing and report no new quarantine.
    assert post([result("bad4", node_id, False)]).quarantined == []


def test_a_nodes_failed_and_slow_requests_lower_its_score_and_its_sites(
    database_url: str, tmp_path: Path
) -> None:
    settings = server_settings(tmp_path / "home", database_url, score_interval_s=0.2)
    with LiveServer(settings) as server:
        with server.client() as admin:
            admin.create_site(SiteCreate(name="mine", region="us", country="US", power_mw=1.0))
        node = server.join_node("mine", "rig")  # a CPU node: its first token is due in 10 s
        node_id = node.headers["x-node-id"]
        node.close()
        started = datetime.now(UTC).isoformat()
        records = [
            usage(f"ok{i}", node_id, 200, ttft_ms=50.0, started_at=started) for i in range(6)
        ]
        records += [usage("fail", node_id, 503, ttft_ms=None, started_at=started)]
        records += [usage("slow", node_id, 200, ttft_ms=60_000.0, started_at=started)]
        with server.http() as http:
            assert http.post("/api/v1/gateway/usage", json={"records": records}).is_success

        def scored() -> ReliabilityOut | None:
            with server.client() as admin:
                r = admin.get_node("rig").reliability
            return r if r is not None and r.requests == 8 else None

        r = wait_until(scored, 20, "the node scored with its requests")
        assert (r.failed, r.slow, r.checks) == (1, 1, 0)
        assert r.success == pytest.approx(12 / 13, abs=1e-4)  # 7 good of 8, with 5 good assumed
        assert r.speed == pytest.approx(12 / 13, abs=1e-4)
        assert r.score < 1.0
        with server.client() as admin:
            site = admin.get_site("mine").reliability
        assert site is not None
        assert (site.requests, site.failed, site.slow) == (8, 1, 1)

        # It sends no heartbeat: lost after its TTL, its uptime falls from then on.
        def down() -> bool:
            with server.client() as admin:
                r = admin.get_node("rig").reliability
            return r is not None and r.uptime < 1.0

        wait_until(down, 30, "the silent node's uptime to fall")


def usage(
    request_id: str, node_id: str, status: int, *, ttft_ms: float | None, started_at: str
) -> dict[str, Any]:
    return {
        "request_id": request_id, "key_id": "k", "customer_id": "c", "model": "tiny",
        "endpoint": "/v1/chat/completions", "replica_id": "r", "node_id": node_id,
        "site": "mine", "status_code": status, "prompt_tokens": 5, "completion_tokens": 7,
        "ttft_ms": ttft_ms, "duration_ms": 90.0, "started_at": started_at,
    }  # fmt: skip
