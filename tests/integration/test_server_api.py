"""The control plane's REST API over real HTTP, on SQLite and on PostgreSQL."""

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from hashgrid.client import ApiError
from hashgrid.common.secrets import hash_secret
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.common import Limits
from hashgrid.contracts.api.deployments import DeploymentChange, DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.prices import PriceCreate
from hashgrid.contracts.api.sites import SiteCreate
from hashgrid.server.db.base import utcnow
from hashgrid.server.db.engine import make_engine
from hashgrid.server.db.migrate import alembic_config
from hashgrid.server.db.tables import Base

from support.live import ADMIN_TOKEN, LiveServer, server_settings

PROBLEM = "application/problem+json"


def _rows(database_url: str, query: str) -> list[tuple[object, ...]]:
    async def run() -> list[tuple[object, ...]]:
        engine = make_engine(database_url)
        try:
            async with engine.connect() as conn:
                return [tuple(r) for r in (await conn.execute(text(query))).all()]
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_every_call_needs_the_admin_token(server: LiveServer) -> None:
    with server.http(token=None) as anonymous:
        r = anonymous.get("/api/v1/sites")
    assert r.status_code == 401
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["status"] == 401
    with server.http(token="hg_admin_wrong") as wrong:
        assert wrong.get("/api/v1/sites").status_code == 401


def test_site_lifecycle_and_errors_as_problem_details(server: LiveServer) -> None:
    with server.client() as c:
        site = c.create_site(
            SiteCreate(name="tx-west", region="us-south", country="US", power_mw=25.0)
        )
        assert (site.region, site.country, site.power_mw) == ("us-south", "US", 25.0)
        assert [s.name for s in c.list_sites()] == ["tx-west"]
        with pytest.raises(ApiError) as taken:
            c.create_site(SiteCreate(name="tx-west", region="us-south", country="US", power_mw=1.0))
        assert taken.value.status == 409
        with pytest.raises(ApiError) as missing:
            c.get_site("nowhere")
        assert missing.value.status == 404
    with server.http() as http:
        bad = http.post(
            "/api/v1/sites", json={"name": "x", "region": "r", "country": "usa", "power_mw": -1}
        )
        assert bad.status_code == 422
        assert bad.headers["content-type"] == PROBLEM
        fields = {tuple(e["loc"]) for e in bad.json()["errors"]}
        assert fields == {("body", "country"), ("body", "power_mw")}
        malformed = http.post(
            "/api/v1/sites", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert malformed.status_code == 422
        assert malformed.headers["content-type"] == PROBLEM
    with server.client() as c:
        assert [s.name for s in c.list_sites()] == ["tx-west"]  # bad input changed nothing


def test_api_keys_are_shown_once_and_stored_hashed(server: LiveServer, database_url: str) -> None:
    with server.client() as c:
        c.create_organization(OrganizationCreate(name="acme", kind="customer"))
        created = c.create_key(KeyCreate(customer="acme", name="prod"))
        assert created.key.startswith("sk-hg-")
        listed = c.list_keys()
        assert [k.id for k in listed] == [created.id]
        assert "key" not in listed[0].model_dump()
        with pytest.raises(ApiError) as not_customer:
            # the platform is an operator, not a customer
            c.create_key(KeyCreate(customer="platform"))
        assert not_customer.value.status == 400
    stored = _rows(database_url, "SELECT key_hash, prefix FROM api_keys")
    assert stored == [(hash_secret(created.key), created.key[:10])]
    assert created.key not in repr(stored)


def test_catalog_and_deployments(server: LiveServer, tiny_model: Path) -> None:
    with server.client() as c:
        model = c.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        assert model.engine == "llamacpp"
        deployment = c.deploy(
            DeploymentCreate(model="tiny", replicas=2, regions=["us", "us", "me"], tier="firm")
        )
        assert (deployment.name, deployment.replicas, deployment.regions) == (
            "tiny",
            2,
            ["me", "us"],
        )
        assert deployment.ready_replicas == 0
        with pytest.raises(ApiError) as unknown:
            c.deploy(DeploymentCreate(model="no-such-model"))
        assert unknown.value.status == 404
        assert c.change_deployment("tiny", DeploymentChange(replicas=0)).replicas == 0
        c.delete_deployment("tiny")
        assert c.list_deployments() == []


def test_deployment_without_nodes_says_why_it_is_pending(
    server: LiveServer, tiny_model: Path
) -> None:
    from support.live import wait_until

    with server.client() as c:
        c.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        c.deploy(DeploymentCreate(model="tiny"))
        d = wait_until(lambda: c.get_deployment("tiny").condition, 10, "a condition")
    assert d == "1 replica(s) pending: no ready node"


def test_openapi_documents_every_resource(server: LiveServer) -> None:
    with server.http(token=None) as http:
        paths = http.get("/openapi.json").json()["paths"]
    for resource in (
        "organizations", "sites", "nodes", "models", "deployments", "replicas", "keys", "usage",
        "tokens",
        "agent/join", "agent/heartbeat", "agent/assignments", "gateway/view", "gateway/usage",
    ):  # fmt: skip
        assert f"/api/v1/{resource}" in paths, resource


def test_admin_token_is_made_on_first_start_only(tmp_path: Path) -> None:
    """Without a bootstrap token the first start makes one, writes it, and later starts keep it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    settings = server_settings(tmp_path / "home", url, bootstrap_admin_token=None)
    for _ in range(2):
        live = LiveServer(settings)
        live.start()
        live.stop()
    token_file = tmp_path / "home" / "server" / "admin-token"
    token = token_file.read_text().strip()
    assert token.startswith("hg_admin_")
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    assert _rows(url, "SELECT count(*) FROM access_tokens WHERE role = 'admin'") == [(1,)]
    with LiveServer(settings) as live:
        with live.client(token) as c:
            assert c.list_sites() == []
        with live.client(ADMIN_TOKEN) as c, pytest.raises(ApiError):
            c.list_sites()


def test_migrations_build_exactly_the_schema_the_tables_declare(
    server: LiveServer, database_url: str
) -> None:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert _rows(database_url, "SELECT version_num FROM alembic_version") == [(head,)]

    async def differences() -> list[object]:
        engine = make_engine(database_url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
                )
        finally:
            await engine.dispose()

    assert asyncio.run(differences()) == []


@pytest.mark.parametrize("resend", [1, 3])
def test_usage_records_are_stored_once_per_request_id(
    server: LiveServer, database_url: str, resend: int
) -> None:
    record = {
        "request_id": "req-1", "key_id": "k", "customer_id": "c", "model": "m",
        "endpoint": "/v1/chat/completions", "replica_id": None, "node_id": None, "site": None,
        "status_code": 200, "prompt_tokens": 5, "completion_tokens": 7, "ttft_ms": 1.5,
        "duration_ms": 9.0, "started_at": "2026-11-21T00:00:00Z",
    }  # fmt: skip
    with server.http() as http:
        acks = [
            http.post(
                "/api/v1/gateway/usage",
                json={"records": [record, {**record, "request_id": "req-2"}]},
            ).json()
            for _ in range(resend)
        ]
    counts = [(a["accepted"], a["duplicates"]) for a in acks]
    assert counts == [(2, 0)] + [(0, 2)] * (resend - 1)
    # A resend's spend is held by the figures that held the first send.
    assert all(a["spend_seq"] == acks[0]["spend_seq"] for a in acks)
    assert _rows(
        database_url, "SELECT request_id, completion_tokens FROM usage_records ORDER BY 1"
    ) == [
        ("req-1", 7),
        ("req-2", 7),
    ]
    with server.client() as c:
        assert {u.request_id for u in c.usage()} == {"req-1", "req-2"}


def test_limits_of_keys_and_customers_are_set_shown_and_put_in_the_gateway_view(
    server: LiveServer,
) -> None:
    with server.client() as c:
        c.create_organization(OrganizationCreate(name="acme", kind="customer"))
        key = c.create_key(
            KeyCreate(
                customer="acme",
                name="prod",
                limits=Limits(rpm=60, tpm=100_000, monthly_budget_usd=50),
            )
        )
        assert key.limits.model_dump() == {
            "rpm": 60,
            "tpm": 100_000,
            "monthly_budget_usd": Decimal(50),
        }
        assert c.set_key_limits(key.id, Limits(tpm=5000)).limits.model_dump() == {
            "rpm": None,
            "tpm": 5000,
            "monthly_budget_usd": None,
        }
        org = c.set_organization_limits("acme", Limits(rpm=600, monthly_budget_usd=0))
        assert (org.limits.rpm, org.limits.tpm, org.limits.monthly_budget_usd) == (600, None, 0)
        with pytest.raises(ApiError) as operator:
            c.set_organization_limits("platform", Limits(rpm=1))
        assert operator.value.status == 400
    with server.http() as http:
        budget = {"rpm": 600, "monthly_budget_usd": "12.345678"}
        shown = http.put("/api/v1/organizations/acme/limits", json=budget).json()["limits"]
        assert shown["monthly_budget_usd"] == "12.345678", "money is a decimal string"
        http.put("/api/v1/organizations/acme/limits", json={"rpm": 600, "monthly_budget_usd": 0})
        view = http.get("/api/v1/gateway/view").json()
    (entry,) = view["keys"]
    assert entry["limits"] == {"rpm": None, "tpm": 5000, "monthly_budget_micros": None}
    assert view["customers"] == [
        {
            "customer_id": org.id,
            "limits": {"rpm": 600, "tpm": None, "monthly_budget_micros": 0},
        }
    ]


@pytest.mark.parametrize(
    "limits",
    [
        {"rpm": 0},
        {"tpm": -5},
        {"monthly_budget_usd": -1},
        {"monthly_budget_usd": "NaN"},
        {"monthly_budget_usd": "0.0000001"},  # finer than a micro-dollar
        {"monthly_budget_usd": 1e10},  # beyond $1e9
        {"rpm": 1.5},
        {"rpm": "lots"},
        {"rmp": 60},  # a typo is refused, not ignored
    ],
)
def test_bad_limits_are_refused_with_problem_details_and_change_nothing(
    server: LiveServer, limits: dict[str, object]
) -> None:
    with server.client() as c:
        c.create_organization(OrganizationCreate(name="acme", kind="customer"))
        kept = c.create_key(KeyCreate(customer="acme", name="kept", limits=Limits(rpm=10)))
    with server.http() as http:
        created = http.post("/api/v1/keys", json={"customer": "acme", "limits": limits})
        updated = http.put(f"/api/v1/keys/{kept.id}/limits", json=limits)
        org = http.put("/api/v1/organizations/acme/limits", json=limits)
    (field,) = limits
    for r in (created, updated, org):
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == PROBLEM
        assert field in r.json()["errors"][0]["loc"]
    with server.client() as c:
        assert [(k.id, k.limits.rpm) for k in c.list_keys()] == [(kept.id, 10)]
        assert c.get_organization("acme").limits.model_dump() == {
            "rpm": None,
            "tpm": None,
            "monthly_budget_usd": None,
        }


def test_usage_is_costed_at_price_book_prices_and_spend_outlives_a_restart(
    server: LiveServer, tiny_model: Path
) -> None:
    """Usage is stored with its cost at the price book's prices; keys, customers and
    the gateway view show this month's spend, also after the server restarts."""
    with server.client() as c:
        c.create_organization(OrganizationCreate(name="acme", kind="customer"))
        assert c.add_model(ModelCreate(name="tiny", source=str(tiny_model), size_bytes=1000))
        c.deploy(DeploymentCreate(model="tiny"))
        c.add_prices(PriceCreate(model="tiny", prompt=Decimal(1), completion=Decimal(3)))
        key = c.create_key(KeyCreate(customer="acme", limits=Limits(monthly_budget_usd=10)))
        c.set_organization_limits("acme", Limits(monthly_budget_usd=100))
    record = {
        "request_id": "req-1", "key_id": key.id, "customer_id": key.customer_id, "model": "tiny",
        "endpoint": "/v1/chat/completions", "replica_id": None, "node_id": None, "site": None,
        "status_code": 200, "prompt_tokens": 1_000_000, "completion_tokens": 500_000,
        "ttft_ms": 1.5, "duration_ms": 9.0, "started_at": utcnow().isoformat(),
    }  # fmt: skip
    batch = [record, {**record, "request_id": "req-2", "model": "gone"}]
    with server.http() as http:
        ack = http.post("/api/v1/gateway/usage", json={"records": batch}).json()
        view = http.get("/api/v1/gateway/view").json()
    assert view["spend"]["seq"] >= ack["spend_seq"]
    assert view["spend"]["keys"] == {key.id: 2_500_000}
    assert view["spend"]["customers"] == {key.customer_id: 2_500_000}
    with server.client() as c:
        costs = {u.request_id: (u.cost_usd, u.priced) for u in c.usage()}
        # A model no price covers is stored unpriced, flagged: never silently free.
        assert costs == {"req-1": (Decimal("2.5"), True), "req-2": (0, False)}
    server.stop()
    with LiveServer(server.settings, port=server.port) as again, again.client() as c:
        (listed,) = c.list_keys()
        assert listed.month_spend_usd == Decimal("2.5")
        assert c.get_organization("acme").month_spend_usd == Decimal("2.5")
