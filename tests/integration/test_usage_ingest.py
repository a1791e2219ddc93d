"""A gateway's usage batch holding bad records, on SQLite and PostgreSQL: the valid records are
stored, the bad ones set aside for the admin, the batch acknowledged, and shipping goes on."""

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text

from hashgrid.contracts.api.access import TokenCreate
from hashgrid.contracts.api.sites import SiteCreate
from hashgrid.contracts.gateway import UsageAck
from hashgrid.server.db.base import utcnow
from hashgrid.server.db.engine import make_engine
from hashgrid.server.db.migrate import alembic_config

from support.live import LiveServer, server_settings


def record(request_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "request_id": request_id, "key_id": "k", "customer_id": "c", "model": "tiny",
        "endpoint": "/v1/chat/completions", "replica_id": "r", "node_id": "n", "site": "s",
        "status_code": 200, "prompt_tokens": 5, "completion_tokens": 7, "ttft_ms": 1.5,
        "duration_ms": 9.0, "started_at": "2026-11-21T00:00:00Z", **changes,
    }  # fmt: skip


# Each would have failed the whole batch (a 500 on PostgreSQL or a 422) and stopped shipping.
BAD: list[Any] = [
    record("long-model", model="m" * 300, status_code=404),
    record("nul-model", model="ti\x00ny", status_code=404),
    record("surrogate", model="\ud800"),
    record("negative", prompt_tokens=-100_000),
    record("overflow", completion_tokens=2**31),
    record("huge", prompt_tokens=10**30),
    record("text-count", prompt_tokens="many"),
    record("no-zone", started_at="2026-11-21T00:00:00"),
    record("nan", duration_ms=float("nan")),
    record("n" * 101),
    {"request_id": "missing-fields"},
    42,
    "a string",
    None,
]


def post(http: Any, records: list[Any]) -> UsageAck:
    # NaN and lone surrogates as a careless sender writes them: json.dumps allows both.
    body = json.dumps({"records": records})
    r = http.post(
        "/api/v1/gateway/usage", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 200, r.text
    return UsageAck.model_validate(r.json())


@pytest.fixture
def gateway_token(server: LiveServer) -> str:
    with server.client() as admin:
        return admin.create_token(TokenCreate(name="gw", role="gateway")).token


def test_bad_records_are_set_aside_and_the_rest_of_the_batch_and_later_ones_are_stored(
    server: LiveServer, gateway_token: str
) -> None:
    good = [record("good-1"), record("good-2", prompt_tokens=2**31 - 1), record("good-3")]
    batch = [good[0], *BAD[:7], good[1], *BAD[7:], good[2]]
    with server.http(gateway_token) as gw:
        first = post(gw, batch)
        again = post(gw, batch)  # an ack lost: the gateway sends the same batch again
        later = post(gw, [record("later")])
    assert (first.accepted, first.duplicates, first.rejected) == (3, 0, len(BAD))
    assert (again.accepted, again.duplicates, again.rejected) == (0, 3, len(BAD))
    assert (later.accepted, later.rejected) == (1, 0)
    with server.client() as admin:
        stored = {u.request_id: u for u in admin.usage(limit=100)}
    assert set(stored) == {"good-1", "good-2", "good-3", "later"}
    assert stored["good-2"].prompt_tokens == 2**31 - 1
    with server.http() as admin_http:
        rejected = admin_http.get("/api/v1/usage/rejected").json()
    assert len(rejected) == len(BAD), "each bad record set aside once, resent or not"
    by_id = {r["request_id"]: r for r in rejected if r["request_id"]}
    assert "model" in by_id["long-model"]["reason"]
    assert "m" * 300 in by_id["long-model"]["record"]
    assert "\\u0000" in by_id["nul-model"]["record"]
    assert "prompt_tokens" in by_id["negative"]["reason"]
    assert "completion_tokens" in by_id["overflow"]["reason"]
    assert "started_at" in by_id["no-zone"]["reason"]
    assert by_id["nan"]["gateway"] == rejected[0]["gateway"] != ""
    assert {r["record"] for r in rejected} >= {"42", '"a string"', "null"}
    assert all(r["request_id"] is None for r in rejected if r["record"] in ("42", "null"))


def test_the_first_record_of_a_request_id_in_a_batch_is_the_one_stored(
    server: LiveServer, gateway_token: str
) -> None:
    """A stream journaled at a sync tick that then ended is spooled whole, and its journaled
    copy (a 499 with the tokens so far) after it when the gateway restarts from a crash; both
    may ship in one batch, and the whole record is the one billed."""
    whole = record("stream-1", completion_tokens=7)
    journaled = record("stream-1", status_code=499, completion_tokens=0)
    with server.http(gateway_token) as gw:
        ack = post(gw, [whole, journaled])
    assert (ack.accepted, ack.duplicates) == (1, 1)
    with server.client() as admin:
        (stored,) = admin.usage(limit=10)
    assert (stored.status_code, stored.completion_tokens) == (200, 7)


def test_a_huge_bad_record_is_kept_cut_to_a_bound(server: LiveServer, gateway_token: str) -> None:
    with server.http(gateway_token) as gw:
        ack = post(gw, [record("big", model="m" * 100_000)])
    assert ack.rejected == 1
    with server.http() as admin_http:
        (kept,) = admin_http.get("/api/v1/usage/rejected").json()
    assert kept["request_id"] == "big"
    assert len(kept["record"]) == 4000


def test_only_the_admin_reads_the_records_set_aside(server: LiveServer, gateway_token: str) -> None:
    with server.http(gateway_token) as gw:
        post(gw, [42])
        assert gw.get("/api/v1/usage/rejected").status_code == 403
    with server.http(token=None) as anonymous:
        assert anonymous.get("/api/v1/usage/rejected").status_code == 401
    node = server.join_node(_site(server), "n1")
    with node:
        assert node.get("/api/v1/usage/rejected").status_code == 403
    with server.http() as admin_http:
        assert len(admin_http.get("/api/v1/usage/rejected").json()) == 1


def _site(server: LiveServer) -> str:
    with server.client() as admin:
        admin.create_site(SiteCreate(name="home", region="us-south", country="US", power_mw=1.0))
    return "home"


def test_records_stored_before_the_bounds_read_back_within_them(
    database_url: str, tmp_path: Path
) -> None:
    """Migration 0020 clamps what older servers stored (negative counts on both backends; on
    SQLite also counts past 32 bits and long or NUL-holding names), so the API can show it."""
    rows = [("negative", "tiny", -100_000, 5, -0.1)]
    if database_url.startswith("sqlite"):
        rows += [("overflow", "tiny", 5, 2**31, 1.0), ("long", "m\x00" + "m" * 299, 5, 7, 0.0)]

    async def store_before_0020() -> None:
        engine = make_engine(database_url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0019"))
                await conn.execute(
                    text(
                        "INSERT INTO usage_records (request_id, key_id, customer_id, model,"
                        " endpoint, status_code, prompt_tokens, completion_tokens, cost_usd,"
                        " duration_ms, started_at, received_at) VALUES (:rid, 'k', 'c', :model,"
                        " '/v1/chat/completions', 200, :prompt, :completion, :cost, 1.0,"
                        " :at, :at)"
                    ),
                    [
                        dict(zip(("rid", "model", "prompt", "completion", "cost"), r, strict=True))
                        | {"at": utcnow()}
                        for r in rows
                    ],
                )
        finally:
            await engine.dispose()

    asyncio.run(store_before_0020())
    settings = server_settings(tmp_path / "home", database_url)
    with LiveServer(settings) as live, live.client() as admin:
        stored = {u.request_id: u for u in admin.usage()}
    negative = stored.pop("negative")
    assert (negative.prompt_tokens, negative.cost_usd, negative.usage_clamped) == (0, 0.0, True)
    if stored:
        assert stored["overflow"].completion_tokens == 2**31 - 1
        assert stored["overflow"].usage_clamped
        assert stored["long"].model == "m" * 200
        assert not stored["long"].usage_clamped
