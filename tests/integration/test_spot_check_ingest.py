"""`POST /api/v1/gateway/spot-checks` on SQLite and PostgreSQL: each result is stored once by its
id (a gateway resends a batch after any failure), and a node is quarantined on the batch that
brings its mismatches to the rule's count among its latest checks, not before."""

from datetime import UTC, datetime, timedelta
from typing import Any

from hashgrid.contracts.api.access import TokenCreate
from hashgrid.contracts.api.sites import SiteCreate
from hashgrid.contracts.spotchecks import SpotCheckAck

from support.live import LiveServer

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
