"""The price book as the server applies it: each record is charged the entry in force when its
request started, keeps it whatever the book says later, and is flagged, not free, without one."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate, Tier
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.prices import DiscountCreate, PriceCreate
from hashgrid.server.db.base import utcnow

from support.live import LiveServer

NOW = utcnow()
MONTH = datetime(NOW.year, NOW.month, 1, tzinfo=UTC)


@pytest.fixture
def priced(server: LiveServer, tiny_model: Path) -> tuple[LiveServer, str, str]:
    """A firm deployment `tiny`, priced from the start of the month; acme's key id and id."""
    with server.client() as c:
        c.create_organization(OrganizationCreate(name="acme", kind="customer"))
        c.add_model(ModelCreate(name="tiny", source=str(tiny_model), size_bytes=1000))
        c.deploy(DeploymentCreate(model="tiny", replicas=0, tier=Tier.FIRM))
        c.add_prices(
            PriceCreate(
                model="tiny",
                prompt=Decimal("1.00"),
                cached=Decimal("0.25"),
                completion=Decimal("3.00"),
                effective_from=MONTH,
            )
        )
        key = c.create_key(KeyCreate(customer="acme"))
    return server, key.id, key.customer_id


def record(rid: str, key: str, customer: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "request_id": rid, "key_id": key, "customer_id": customer, "model": "tiny",
        "endpoint": "/v1/chat/completions", "replica_id": None, "node_id": None, "site": None,
        "status_code": 200, "prompt_tokens": 1_000_000, "completion_tokens": 100_000,
        "ttft_ms": 1.0, "duration_ms": 2.0, "started_at": at.isoformat(),
    } | extra  # fmt: skip


def ingest(server: LiveServer, *records: dict[str, Any]) -> None:
    with server.http() as http:
        r = http.post("/api/v1/gateway/usage", json={"records": list(records)})
        assert r.json()["accepted"] == len(records)


def test_a_price_change_mid_month_charges_each_record_the_price_of_its_start(
    priced: tuple[LiveServer, str, str],
) -> None:
    server, key, customer = priced
    change = NOW - timedelta(seconds=30)
    before, after = change - timedelta(seconds=10), change + timedelta(seconds=10)
    ingest(server, record("r-before", key, customer, before))
    with server.client() as c:
        c.add_prices(
            PriceCreate(
                model="tiny",
                tier=Tier.FIRM,
                prompt=Decimal(2),
                cached=Decimal("0.5"),
                completion=Decimal(6),
                effective_from=change,
            )
        )
    ingest(
        server,
        record("r-after", key, customer, after, cached_tokens=400_000),
        record("r-late", key, customer, before),  # started before the change, stored after
    )
    with server.client() as c:
        got = {u.request_id: (u.tier, u.cost_usd, u.cached_tokens) for u in c.usage()}
    # $1/1M prompt + $3/1M completion: 1.00 + 0.30; after: 0.6M x $2 + 0.4M x $0.50 + 0.6
    assert got == {
        "r-before": ("firm", Decimal("1.3"), 0),
        "r-late": ("firm", Decimal("1.3"), 0),
        "r-after": ("firm", Decimal("2.0"), 400_000),
    }


def test_a_record_without_a_price_is_flagged_then_priced_by_a_covering_entry_only(
    priced: tuple[LiveServer, str, str], tiny_model: Path
) -> None:
    server, key, customer = priced
    with server.client() as c:
        c.add_model(ModelCreate(name="other", source=str(tiny_model), size_bytes=1000))
        c.deploy(DeploymentCreate(model="other", replicas=0))
    started = NOW - timedelta(minutes=5)
    ingest(server, record("r-free", key, customer, started, model="other"))
    with server.client() as c:
        (free,) = [u for u in c.usage() if u.request_id == "r-free"]
        assert (free.priced, free.cost_usd) == (False, 0)
        # An entry from now on does not cover a request that started before it.
        c.add_prices(PriceCreate(model="other", prompt=Decimal(1), completion=Decimal(1)))
        (still,) = [u for u in c.usage() if u.request_id == "r-free"]
        assert not still.priced
        c.add_prices(
            PriceCreate(
                model="other",
                prompt=Decimal(1),
                completion=Decimal(1),
                effective_from=started - timedelta(minutes=1),
            )
        )
        (now_priced,) = [u for u in c.usage() if u.request_id == "r-free"]
    assert (now_priced.priced, now_priced.tier, now_priced.cost_usd) == (
        True,
        "flex",
        Decimal("1.1"),
    )


def test_a_discount_lowers_the_unit_prices_of_that_customer_only_from_its_moment(
    priced: tuple[LiveServer, str, str],
) -> None:
    server, key, customer = priced
    with server.client() as c:
        c.create_organization(OrganizationCreate(name="other", kind="customer"))
        other = c.create_key(KeyCreate(customer="other"))
        c.add_discount(
            DiscountCreate(customer="acme", percent=Decimal("12.5"), effective_from=MONTH)
        )
        assert [(d.customer, d.percent) for d in c.list_discounts()] == [("acme", Decimal("12.5"))]
    ingest(
        server,
        record("r-acme", key, customer, NOW),
        record("r-other", other.id, other.customer_id, NOW),
    )
    with server.client() as c:
        got = {u.request_id: u.cost_usd for u in c.usage()}
    assert got == {"r-acme": Decimal("1.3") * Decimal("0.875"), "r-other": Decimal("1.3")}


def test_bad_prices_are_refused_and_change_nothing(priced: tuple[LiveServer, str, str]) -> None:
    server, _, _ = priced
    with server.http() as http:
        before = http.get("/api/v1/prices").json()
        finer = {"model": "tiny", "prompt": "0.0000001", "completion": "1"}
        assert http.post("/api/v1/prices", json=finer).status_code == 422
        negative = {"model": "tiny", "prompt": "-1", "completion": "1"}
        assert http.post("/api/v1/prices", json=negative).status_code == 422
        unknown = {"model": "nope", "prompt": "1", "completion": "1"}
        r = http.post("/api/v1/prices", json=unknown)
        assert r.status_code == 404
        assert r.headers["content-type"] == "application/problem+json"
        again = {"model": "tiny", "tier": "firm", "prompt": "5", "completion": "5",
                 "effective_from": MONTH.isoformat()}  # fmt: skip
        assert http.post("/api/v1/prices", json=again).status_code == 409
        assert http.get("/api/v1/prices").json() == before
        assert [(p["tier"], p["prompt"]) for p in before] == [("firm", "1.00"), ("flex", "1.00")]
