"""Inputs past what the database holds are refused with a 422 in problem details and change
nothing, on SQLite and PostgreSQL; a site's bad power model stops no other site's planning."""

import asyncio
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from hashgrid.contracts.api.sites import SiteCreate
from hashgrid.server.db.engine import make_engine

from support.live import LiveServer, wait_until

PROBLEM = "application/problem+json"
POWER = {
    "asics": [{"model": "Antminer S21", "count": 10}],
    "gpus": {"busy_kw": 10.0, "idle_kw": 2.0},
    "price": {"kind": "fixed", "usd_per_mwh": 30.0},
    "hashprice": {"kind": "constant", "usd_per_ph_day": 50.0},
}
INT64_OVER = 2**63
SITE = {"name": "tx", "region": "us-south", "country": "US", "power_mw": 1.0}


def _sql(database_url: str, statement: str, **values: Any) -> list[tuple[Any, ...]]:
    async def run() -> list[tuple[Any, ...]]:
        engine = make_engine(database_url)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(text(statement), values)
                return [tuple(r) for r in result.all()] if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _refused(answer: httpx.Response) -> None:
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body = answer.json()
    assert body["status"] == 422
    assert body["errors"], body


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/sites", {**SITE, "region": "us\u0000south"}),
        ("POST", "/api/v1/sites", {**SITE, "power_mw": 1e300}),
        ("POST", "/api/v1/models", {"name": "m", "source": "/m.gguf", "size_bytes": INT64_OVER}),
        ("POST", "/api/v1/models", {"name": "m", "source": "/m\u0000", "size_bytes": 1}),
        ("POST", "/api/v1/models", {"name": "m", "source": "/" * 2001, "size_bytes": 1}),
        ("POST", "/api/v1/deployments", {"name": "x", "endpoint": "http://a/\u0000"}),
        ("GET", "/api/v1/sites/tx%00", None),
        ("GET", "/api/v1/replicas?node=n%00", None),
        ("GET", "/api/v1/nodes/" + "n" * 101, None),
        ("PUT", "/api/v1/sites/tx/power", {**POWER, "gpus": {"busy_kw": 5e-324, "idle_kw": 0}}),
        ("PUT", "/api/v1/sites/tx/power", {**POWER, "asics": [{"model": "S\u0000", "count": 1,
                                                               "th_s": 1, "watts": 1}]}),
        ("PUT", "/api/v1/sites/tx/power", {**POWER, "price": {"kind": "fixed",
                                                              "usd_per_mwh": 1e308}}),
        ("POST", "/api/v1/sites/tx/curtailments", {"target_mw": 0, "reason": "\u0000"}),
    ],
)  # fmt: skip
def test_admin_inputs_past_their_columns_are_refused_and_change_nothing(
    server: LiveServer, method: str, path: str, body: dict[str, Any] | None
) -> None:
    with server.http() as http:
        http.post("/api/v1/sites", json=SITE).raise_for_status()
        _refused(http.request(method, path, json=body))
        assert [s["name"] for s in http.get("/api/v1/sites").json()] == ["tx"]
        assert http.get("/api/v1/models").json() == []
        assert http.get("/api/v1/deployments").json() == []
        assert http.get("/api/v1/sites/tx/power").json()["model"] is None
        assert http.get("/api/v1/sites/tx/power/history").json()["curtailments"] == []


def test_a_node_name_over_100_characters_is_refused_at_join(server: LiveServer) -> None:
    with server.client() as admin:
        admin.create_site(SiteCreate(name="tx", region="us-south", country="US", power_mw=1.0))
        token = admin.create_join_token("tx").token
    fingerprint = {
        **{"hostname": "h", "os": "linux", "arch": "x86_64", "cpu_model": "c", "cpu_count": 1},
        **{"memory_total_bytes": 1, "memory_available_bytes": 1},
    }
    body = {"join_token": token, "name": "n" * 101, "fingerprint": fingerprint}
    with server.http(token=None) as http:
        _refused(http.post("/api/v1/agent/join", json=body))
        assert http.post("/api/v1/agent/join", json={**body, "name": "n"}).status_code == 200


@pytest.mark.parametrize(
    "results",
    [
        {"revision": INT64_OVER, "results": []},
        {"revision": 1, "results": [{"address": "10.0.0.1", "done": None, "detail": "x\u0000"}]},
        {"revision": 1, "results": [], "nodes": [{"node": "n" * 101, "on": None}]},
    ],
)
def test_bad_miner_results_are_refused_and_the_report_before_stays(
    server: LiveServer, results: dict[str, Any]
) -> None:
    with server.http() as http:
        http.post("/api/v1/sites", json=SITE).raise_for_status()
    node = server.join_node("tx", "site-agent")
    good = {"revision": 1, "results": [{"address": "10.0.0.1", "done": None, "detail": "down"}]}
    with server.http() as http, node:
        http.put("/api/v1/sites/tx/power", json=POWER).raise_for_status()
        assert node.post("/api/v1/agent/miners/results", json=good).status_code == 200
        _refused(node.post("/api/v1/agent/miners/results", json=results))
        miners = http.get("/api/v1/sites/tx/power").json()["miners"]
        assert (miners["revision"], miners["first_failure"]) == (1, "10.0.0.1: down")


def test_a_sites_bad_stored_power_model_stops_no_other_sites_plans(
    server: LiveServer, database_url: str
) -> None:
    """A model stored before today's bounds (busy_kw 5e-324) is skipped by the power
    reconciler, the next site is planned all the same, and its plan answers 409."""
    with server.http() as http:
        for name in ("a", "b"):
            http.post("/api/v1/sites", json={**SITE, "name": name}).raise_for_status()
        http.put("/api/v1/sites/a/power", json=POWER).raise_for_status()
        bad = {**POWER, "gpus": {"busy_kw": 5e-324, "idle_kw": 0.0}}
        _sql(
            database_url,
            "UPDATE site_power SET model = :model, updated_at = CURRENT_TIMESTAMP "
            "WHERE site_id = (SELECT id FROM sites WHERE name = 'a')",
            model=json.dumps(bad),
        )
        http.put("/api/v1/sites/b/power", json=POWER).raise_for_status()
        wait_until(
            lambda: http.get("/api/v1/sites/b/power/history").json()["plans"], 20, "b's plan"
        )
        for path in ("/api/v1/sites/a/power/plan", "/api/v1/sites/a/power"):
            answer = http.get(path)
            assert answer.status_code == 409, answer.text
            assert answer.headers["content-type"] == PROBLEM
            assert "busy_kw" in answer.json()["detail"]
        assert http.get("/api/v1/sites/b/power/plan?hours=2").status_code == 200


def test_openapi_documents_errors_as_problem_details(server: LiveServer) -> None:
    """Every operation's 422 (and other errors) is documented as what the server sends."""
    with server.http() as http:
        document = http.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert {"type", "title", "status", "detail", "errors"} <= set(schemas["Problem"]["properties"])
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status in ("400", "401", "403", "404", "409", "422"):
                content = operation["responses"][status]["content"]
                assert list(content) == [PROBLEM], (method, path, status)
                assert content[PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
