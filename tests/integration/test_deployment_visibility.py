"""Which deployments a caller finds on the REST API: a customer the public ones and its own
private ones, the platform admin every one; another customer's private deployment is as absent
as a missing one. On SQLite and PostgreSQL."""

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest

from hashgrid.client import HashgridClient
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.sites import SiteCreate

from support.accounts import sign_up
from support.live import ADMIN_TOKEN, LiveServer

DEPLOYMENTS = "/api/v1/deployments"


def member_token(server: LiveServer, admin_token: str) -> str:
    """A personal token with the member role, made by an admin of the organization."""
    with server.http(admin_token) as admin:
        r = admin.post("/api/v1/me/tokens", json={"name": "reader", "role": "member"})
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return token


def deploy(http: httpx.Client, name: str, customer: str | None = None, **fields: Any) -> Any:
    r = http.post(DEPLOYMENTS, json={"model": "tiny", "name": name, "customer": customer, **fields})
    assert r.status_code == 201, r.text
    return r.json()


def names(http: httpx.Client, **params: Any) -> list[str]:
    r = http.get(DEPLOYMENTS, params=params)
    assert r.status_code == 200, r.text
    return [d["name"] for d in r.json()]


@pytest.fixture
def customers(server: LiveServer, tiny_model: Path) -> tuple[str, str]:
    """Customers a and b (their admins' tokens), a public deployment `open` and `a-only`,
    private to a."""
    a, b = sign_up(server, "a"), sign_up(server, "b")
    with server.client() as admin:
        admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
    with server.http() as http:
        deploy(http, "open")
        deploy(http, "a-only", customer="a")
    return a, b


def test_a_customer_finds_the_public_deployments_and_its_own_private_ones(
    server: LiveServer, customers: tuple[str, str]
) -> None:
    a, b = customers
    with server.http(a) as http:
        assert names(http) == ["a-only", "open"]
        private = http.get(f"{DEPLOYMENTS}/a-only").json()
        assert (private["customer"], http.get(f"{DEPLOYMENTS}/open").json()["customer"]) == (
            "a",
            None,
        )
    with server.http(member_token(server, a)) as member:
        assert names(member) == ["a-only", "open"]
        assert member.get(f"{DEPLOYMENTS}/a-only").status_code == 200
    with server.http(b) as http:
        assert names(http) == ["open"]
        assert names(http, customer="a") == []
    with server.http() as platform:
        assert names(platform) == ["a-only", "open"]


def test_another_customers_private_deployment_is_a_404_like_a_missing_one(
    server: LiveServer, customers: tuple[str, str]
) -> None:
    _, b = customers
    with server.http(b) as http:
        hidden = http.get(f"{DEPLOYMENTS}/a-only")
        missing = http.get(f"{DEPLOYMENTS}/no-such")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.headers["content-type"] == missing.headers["content-type"]
    assert hidden.json() == {**missing.json(), "detail": "no deployment 'a-only'"}


def test_only_the_platform_admin_deploys_or_changes_who_may_call(
    server: LiveServer, customers: tuple[str, str]
) -> None:
    a, _ = customers
    with server.http(a) as http:
        body = {"model": "tiny", "name": "mine", "customer": "a"}
        assert http.post(DEPLOYMENTS, json=body).status_code == 403
        assert http.patch(f"{DEPLOYMENTS}/a-only", json={"customer": None}).status_code == 403
        assert http.get(f"{DEPLOYMENTS}/a-only").json()["customer"] == "a"


def test_a_deployment_is_private_only_to_a_customer_that_exists(
    server: LiveServer, customers: tuple[str, str]
) -> None:
    with server.http() as http:
        unknown = http.post(DEPLOYMENTS, json={"model": "tiny", "name": "x", "customer": "nobody"})
        operator = http.post(
            DEPLOYMENTS, json={"model": "tiny", "name": "x", "customer": "platform"}
        )
        assert (unknown.status_code, operator.status_code) == (404, 400)
        assert "customer" in operator.json()["detail"]
        change = http.patch(f"{DEPLOYMENTS}/open", json={"customer": "platform"})
        assert change.status_code == 400
        assert names(http) == ["a-only", "open"]  # nothing made, nothing changed
        assert http.get(f"{DEPLOYMENTS}/open").json()["customer"] is None


def test_a_change_of_customer_moves_the_deployment_between_customers_at_once(
    server: LiveServer, customers: tuple[str, str]
) -> None:
    a, b = customers
    with server.http() as http:
        moved = http.patch(f"{DEPLOYMENTS}/a-only", json={"customer": "b"})
        assert moved.status_code == 200
        assert moved.json()["customer"] == "b"
        assert moved.json()["generation"] == 0  # who may call is no rollout
        assert "private to b" in [e["message"] for e in moved.json()["events"]]
    with server.http(a) as http:
        assert names(http) == ["open"]
    with server.http(b) as http:
        assert names(http) == ["a-only", "open"]
    with server.http() as http:
        public = http.patch(f"{DEPLOYMENTS}/a-only", json={"customer": None})
        assert public.json()["customer"] is None
        unchanged = http.patch(f"{DEPLOYMENTS}/a-only", json={"replicas": 2})
        assert unchanged.json()["customer"] is None  # left out: stays as it is
    with server.http(a) as http:
        assert names(http) == ["a-only", "open"]


def test_deployments_are_listed_a_page_at_a_time_and_filtered_by_model_and_customer(
    server: LiveServer, customers: tuple[str, str], tiny_model: Path
) -> None:
    a, _ = customers
    with server.client() as admin:
        admin.add_model(
            ModelCreate(name="other", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
    with server.http() as http:
        for name in ("b-1", "b-2"):
            deploy(http, name, customer="b")
        deploy(http, "c-other", model="other")
        every = ["a-only", "b-1", "b-2", "c-other", "open"]
        seen, cursor, pages = [], None, 0
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            r = http.get(DEPLOYMENTS, params=params)
            assert r.status_code == 200
            seen += [d["name"] for d in r.json()]
            pages += 1
            cursor = r.headers.get("x-next-cursor")
            if cursor is None:
                assert "link" not in r.headers
                break
            assert r.headers["link"].endswith('>; rel="next"')
        assert (seen, pages) == (every, 3)
        with HashgridClient(server.url, ADMIN_TOKEN, page_size=2) as paging:  # follows the pages
            assert [d.name for d in paging.list_deployments()] == every
        assert names(http, model="other") == ["c-other"]
        assert names(http, model="tiny", customer="b") == ["b-1", "b-2"]
        assert names(http, customer="nobody") == []
        for made_up in ("bm9wZQ", base64.urlsafe_b64encode(b'["a\\u0000"]').decode()):
            assert http.get(DEPLOYMENTS, params={"cursor": made_up}).status_code == 400
    with server.http(a) as http:  # a customer's pages hold what it finds, no more
        first = http.get(DEPLOYMENTS, params={"limit": 1})
        assert [d["name"] for d in first.json()] == ["a-only"]
        cursor = first.headers["x-next-cursor"]
        rest = http.get(DEPLOYMENTS, params={"limit": 10, "cursor": cursor})
        assert [d["name"] for d in rest.json()] == ["c-other", "open"]
        assert "x-next-cursor" not in rest.headers


def test_a_customer_is_shown_no_site_endpoint_replica_or_event_of_a_deployment(
    server: LiveServer, customers: tuple[str, str]
) -> None:
    """What serves a deployment is operators' infrastructure: the platform admin sees it."""
    a, _ = customers
    with server.client() as admin:
        admin.create_site(SiteCreate(name="s1", region="us-south", country="US", power_mw=1.0))
    with server.http() as http:
        body = {"name": "byo", "endpoint": "http://127.0.0.1:9/v1", "customer": "a"}
        assert http.post(DEPLOYMENTS, json=body).status_code == 201
        full = http.get(f"{DEPLOYMENTS}/byo").json()
    assert (full["site"], full["endpoint"]) == ("s1", "http://127.0.0.1:9")
    assert full["events"]
    with server.http(a) as http:
        shown = http.get(f"{DEPLOYMENTS}/byo").json()
        listed = {d["name"]: d for d in http.get(DEPLOYMENTS).json()}["byo"]
    assert shown == listed
    hidden = {
        "site": None,
        "endpoint": None,
        "events": [],
        "replica_list": [],
        "recent_failures": [],
    }
    moving = {"condition": None}  # the endpoint's probes change it meanwhile
    assert {**shown, **moving} == {**full, **hidden, **moving}


def test_an_external_endpoint_changes_customer_and_nothing_else(
    server: LiveServer, customers: tuple[str, str]
) -> None:
    with server.client() as admin:
        admin.create_site(SiteCreate(name="s1", region="us-south", country="US", power_mw=1.0))
    with server.http() as http:
        body = {"name": "byo", "endpoint": "http://127.0.0.1:9/v1"}
        assert http.post(DEPLOYMENTS, json=body).status_code == 201
        moved = http.patch(f"{DEPLOYMENTS}/byo", json={"customer": "b"})
        assert (moved.status_code, moved.json()["customer"]) == (200, "b")
        resized = http.patch(f"{DEPLOYMENTS}/byo", json={"customer": "a", "replicas": 2})
        assert resized.status_code == 400
        assert http.get(f"{DEPLOYMENTS}/byo").json()["customer"] == "b"
