"""Tenancy, on SQLite and PostgreSQL: a customer or operator sees and changes its own
organization's objects and nothing of another's, not even whether an id exists; roles hold at
once; every credential that ends (revoked, expired, its member removed) stops working at once;
the browser session needs its CSRF token; sign-in is throttled; sign-up can be by invitation;
and every change leaves an audit entry its organization's admins read."""

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from hashgrid.contracts.agent import PROTOCOL_HEADER
from hashgrid.server.accounts.tables import PersonalToken
from hashgrid.server.db.base import utcnow
from hashgrid.server.db.engine import make_engine

from support import postgres
from support.live import LiveServer, server_settings
from support.tenants import (
    CUSTOMER_A,
    CUSTOMER_B,
    OPERATOR_X,
    OPERATOR_Y,
    PASSWORD,
    SITE_X,
    SITE_Y,
    Member,
    Tenants,
    ok,
    served_tenants,
)

MADE_UP = "0123456789abcdef0123456789abcdef"  # as long as a real id, of nothing
THEIRS = "<theirs>"  # in a body: the other tenant's id or name, or `MADE_UP`


@pytest.fixture(scope="module", params=postgres.BACKENDS)
def tenants(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tenants]:
    with served_tenants(request.param, tmp_path_factory.mktemp(request.param)) as tenants:
        yield tenants


def answer(http: httpx.Client, method: str, path: str, body: Any, hidden: str) -> tuple[Any, ...]:
    """The status, content type and body of a call with `hidden` in place of `{}` in its path
    and of `THEIRS` in its body, and written out of the answer: what a caller learns beyond
    what it sent."""
    filled = None if body is None else json.loads(json.dumps(body).replace(THEIRS, hidden))
    r = http.request(method, path.format(hidden), json=filled)
    return r.status_code, r.headers["content-type"], r.text.replace(hidden, "<sent>")


def assert_as_absent(http: httpx.Client, method: str, path: str, theirs: str, body: Any) -> None:
    """Calling `path` on another tenant's `theirs` answers exactly as on an id of nothing."""
    real = answer(http, method, path, body, theirs)
    made_up = answer(http, method, path, body, MADE_UP)
    assert real[0] == 404, f"{method} {path.format(theirs)}: {real}"
    assert real == made_up


def test_a_customer_cannot_reach_another_customers_keys_or_organization(tenants: Tenants) -> None:
    t = tenants
    members = f"/api/v1/organizations/{CUSTOMER_B}/members/{{}}"
    for method, path, theirs, body in [
        ("PUT", "/api/v1/keys/{}/limits", t.key_b, {}),
        ("DELETE", "/api/v1/keys/{}", t.key_b, None),
        ("POST", "/api/v1/keys", CUSTOMER_B, {"customer": THEIRS}),  # a key of B's, made by A
        ("GET", "/api/v1/organizations/{}", CUSTOMER_B, None),
        ("GET", "/api/v1/organizations/{}/members", CUSTOMER_B, None),
        ("POST", "/api/v1/organizations/{}/invites", CUSTOMER_B, {}),
        ("PUT", members, t.b_admin.user_id, {"role": "member"}),
        ("DELETE", members, t.b_admin.user_id, None),
    ]:
        assert_as_absent(t.http(t.a_admin.token), method, path, theirs, body)
    # Nothing of B's changed: its key is live, its admin still its admin, and no key was made.
    b = t.http(t.b_admin.token)
    assert [k["revoked_at"] for k in ok(b.get("/api/v1/keys"))] == [None]
    assert ok(b.get("/api/v1/me"))["role"] == "customer admin"


def test_an_operator_cannot_reach_another_operators_sites_nodes_or_join_tokens(
    tenants: Tenants,
) -> None:
    t = tenants
    x = t.http(t.x_admin.token)
    for method, path, body in [
        ("GET", "/api/v1/sites/{}", None),
        ("POST", "/api/v1/sites/{}/join-tokens", None),
        ("GET", "/api/v1/sites/{}/power", None),
        ("PUT", "/api/v1/sites/{}/power", {"price": {"kind": "fixed", "usd_per_mwh": 1.0},
                                           "hashprice": {"kind": "constant",
                                                         "usd_per_ph_day": 1.0}}),
        ("POST", "/api/v1/sites/{}/curtailments", {"target_mw": 1.0}),
        ("DELETE", "/api/v1/sites/{}/curtailments", None),
        ("GET", "/api/v1/sites/{}/power/plan", None),
        ("GET", "/api/v1/sites/{}/power/history", None),
        ("GET", "/api/v1/organizations/{}", None),
    ]:  # fmt: skip
        theirs = OPERATOR_Y if "organizations" in path else SITE_Y
        assert_as_absent(x, method, path, theirs, body)
    for action, body in [("", None), ("/cordon", None), ("/uncordon", None),
                         ("/drain", {}), ("/revoke", None)]:  # fmt: skip
        method = "POST" if action else "GET"
        assert_as_absent(x, method, f"/api/v1/nodes/{{}}{action}", t.node_y, body)
    # Y's node is as it was: not cordoned, not draining, its credential not revoked.
    node_y = ok(t.http(t.y_admin.token).get(f"/api/v1/nodes/{t.node_y}"))
    assert (node_y["cordoned"], node_y["drain_deadline"]) == (False, None)
    beat = t.http(t.node_y_token).post(
        "/api/v1/agent/heartbeat", json={}, headers={PROTOCOL_HEADER: "1"}
    )
    assert beat.status_code == 200, beat.text


def _ids_of(t: Tenants, organization: str) -> set[str]:
    """Every id and name of `organization` and of what it owns, as the platform sees them."""
    admin = t.http(t.platform)
    org_id = t.org_ids[organization]
    ids = {org_id, organization}
    ids |= {e["id"] for e in ok(admin.get("/api/v1/audit", params={"limit": 1000}))
            if e["organization_id"] == org_id}  # fmt: skip
    ids |= {m["user_id"] for m in ok(admin.get(f"/api/v1/organizations/{organization}/members"))}
    ids |= {k["id"] for k in ok(admin.get("/api/v1/keys")) if k["customer_id"] == org_id}
    sites = {s["name"]: s["id"] for s in ok(admin.get("/api/v1/sites"))}
    owned_sites = {SITE_X} if organization == OPERATOR_X else set()
    owned_sites |= {SITE_Y} if organization == OPERATOR_Y else set()
    for name in owned_sites:
        ids |= {name, sites[name]}
        ids |= {n["id"] for n in ok(admin.get("/api/v1/nodes")) if n["site"] == name}
    ids |= {u["request_id"] for u in ok(admin.get("/api/v1/usage"))
            if u["customer_id"] == org_id or u["site"] in owned_sites}  # fmt: skip
    return ids


# Whose ids each tenant must never see: the other of its kind, and the one on the other side of
# the other's traffic (B's requests were served by Y's node, A's by X's).
STRANGERS = {
    CUSTOMER_A: (CUSTOMER_B, OPERATOR_Y),
    CUSTOMER_B: (CUSTOMER_A, OPERATOR_X),
    OPERATOR_X: (OPERATOR_Y, CUSTOMER_B),
    OPERATOR_Y: (OPERATOR_X, CUSTOMER_A),
}
LISTINGS = [
    "/api/v1/me", "/api/v1/me/tokens", "/api/v1/organizations", "/api/v1/audit",
    "/api/v1/keys", "/api/v1/usage", "/api/v1/sites", "/api/v1/nodes", "/api/v1/deployments",
    "/api/v1/models",
]  # fmt: skip


def test_listings_never_hold_another_tenants_ids(tenants: Tenants) -> None:
    t = tenants
    ids = {org: _ids_of(t, org) for org in STRANGERS}
    assert t.key_b in ids[CUSTOMER_B]  # the sets are complete
    assert t.node_y in ids[OPERATOR_Y]
    for organization, member in [
        (CUSTOMER_A, t.a_member), (CUSTOMER_A, t.a_admin), (CUSTOMER_B, t.b_admin),
        (OPERATOR_X, t.x_admin), (OPERATOR_Y, t.y_admin),
    ]:  # fmt: skip
        http = t.http(member.token)
        own = f"/api/v1/organizations/{organization}/members"
        seen = " ".join(http.get(path).text for path in [*LISTINGS, own])
        for stranger in STRANGERS[organization]:
            leaked = sorted(i for i in ids[stranger] if i in seen)
            assert not leaked, f"{organization}'s {member.email} sees {stranger}'s {leaked}"
    # The listings are not empty: each sees its own.
    assert t.key_a in t.http(t.a_member.token).get("/api/v1/keys").text
    assert t.node_x in t.http(t.x_admin.token).get("/api/v1/nodes").text
    assert t.usage_a in t.http(t.a_admin.token).get("/api/v1/usage").text
    assert t.usage_a in t.http(t.x_admin.token).get("/api/v1/usage").text  # X's node served it


def test_each_side_of_a_request_is_not_shown_the_other(tenants: Tenants) -> None:
    """An operator sees the requests its node served but not whose (no key, customer or client
    request id), nor may it pick them out by key; a customer sees its requests but not which
    operator's node served them. The platform admin sees both sides."""
    t = tenants

    def record(token: str) -> dict[str, object]:
        listed = ok(t.http(token).get("/api/v1/usage"))
        return next(u for u in listed if u["request_id"] == t.usage_a)

    operators, customers, platform = (
        record(t.x_admin.token),
        record(t.a_admin.token),
        record(t.platform),
    )
    assert (operators["key_id"], operators["customer_id"], operators["client_request_id"]) == (
        None, None, None,
    )  # fmt: skip
    assert operators["node_id"] == platform["node_id"] == t.node_x
    assert (customers["node_id"], customers["replica_id"]) == (None, None)
    assert customers["key_id"] == platform["key_id"] == t.key_a
    x = t.http(t.x_admin.token)
    for asked in ({"group_by": "key"}, {"key_id": t.key_a}):
        assert x.get("/api/v1/usage/summary", params=asked).status_code == 400
    assert x.get("/api/v1/usage", params={"key_id": t.key_a}).status_code == 400
    assert (
        t.http(t.a_admin.token).get("/api/v1/usage/summary", params={"group_by": "key"}).is_success
    )


def test_a_member_can_change_nothing_of_its_organization(tenants: Tenants) -> None:
    t = tenants
    member = t.http(t.a_member.token)
    members = f"/api/v1/organizations/{CUSTOMER_A}/members"
    for method, path, body in [
        ("POST", "/api/v1/keys", {"name": "mine"}),
        ("PUT", f"/api/v1/keys/{t.key_a}/limits", {}),
        ("DELETE", f"/api/v1/keys/{t.key_a}", None),
        ("POST", f"/api/v1/organizations/{CUSTOMER_A}/invites", {}),
        ("PUT", f"{members}/{t.a_member.user_id}", {"role": "admin"}),  # itself made admin
        ("DELETE", f"{members}/{t.a_admin.user_id}", None),
        ("POST", "/api/v1/me/tokens", {"name": "admin-token", "role": "admin"}),
    ]:
        r = member.request(method, path, json=body)
        assert r.status_code in (400, 403), f"{method} {path}: {r.status_code} {r.text}"
    assert ok(member.get("/api/v1/me"))["role"] == "customer member"
    assert t.key_a in member.get("/api/v1/keys").text  # it reads


def test_a_demoted_admin_loses_admin_at_once_and_a_removed_member_is_refused_for_good(
    tenants: Tenants,
) -> None:
    t = tenants
    admin = t.http(t.a_admin.token)
    second = t.invite(CUSTOMER_A, t.a_admin.token, "admin")
    as_second = t.server.http(token=second.token)
    assert as_second.post("/api/v1/keys", json={"name": "by-second"}).status_code == 201
    member_url = f"/api/v1/organizations/{CUSTOMER_A}/members/{second.user_id}"
    assert ok(admin.put(member_url, json={"role": "member"}))["role"] == "member"
    assert as_second.post("/api/v1/keys", json={"name": "again"}).status_code == 403
    assert as_second.get("/api/v1/keys").status_code == 200  # still a member: reads
    assert admin.delete(member_url).status_code == 204
    assert as_second.get("/api/v1/me").status_code == 401
    # Invited back, the user signs in anew: the old token stays dead.
    code = ok(admin.post(f"/api/v1/organizations/{CUSTOMER_A}/invites", json={"role": "admin"}))
    back = {"code": code["code"], "email": second.email, "password": PASSWORD}
    assert t.http(None).post("/api/v1/invites/accept", json=back).status_code == 200
    assert as_second.get("/api/v1/me").status_code == 401
    as_second.close()


def _expire(database_url: str, token_id: str) -> None:
    """Make a personal token's expiry a day past, as if its days had gone by."""

    async def run() -> None:
        engine = make_engine(database_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    update(PersonalToken)
                    .where(PersonalToken.id == token_id)
                    .values(expires_at=utcnow() - timedelta(days=1))
                )
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_a_revoked_or_expired_personal_token_is_refused(tenants: Tenants) -> None:
    t = tenants
    admin = t.http(t.a_admin.token)
    revoked = ok(admin.post("/api/v1/me/tokens", json={"name": "to-revoke"}))
    expired = ok(admin.post("/api/v1/me/tokens", json={"name": "to-expire"}))
    for made in (revoked, expired):
        with t.server.http(token=made["token"]) as http:
            assert http.get("/api/v1/me").status_code == 200
    assert admin.delete(f"/api/v1/me/tokens/{revoked['id']}").status_code == 204
    _expire(t.server.settings.resolved_database_url(), expired["id"])
    for made in (revoked, expired):
        with t.server.http(token=made["token"]) as http:
            r = http.get("/api/v1/me")
            assert r.status_code == 401, r.text
            assert r.headers["www-authenticate"] == "Bearer"


def test_a_browser_session_changes_things_only_with_its_csrf_token(tenants: Tenants) -> None:
    t = tenants
    with t.server.http(token=None) as browser:
        started = ok(browser.post("/api/v1/session", json=_sign_in(t.a_admin)))
        assert "hg_session" in browser.cookies
        assert ok(browser.get("/api/v1/me"))["role"] == "customer admin"  # a read needs none
        refused = browser.post("/api/v1/me/tokens", json={"name": "from-browser"})
        assert refused.status_code == 403, refused.text
        wrong = {"x-csrf-token": "hg_csrf_not-this-one"}
        assert browser.post("/api/v1/keys", json={}, headers=wrong).status_code == 403
        csrf = {"x-csrf-token": started["csrf_token"]}
        made = browser.post("/api/v1/me/tokens", json={"name": "from-browser"}, headers=csrf)
        assert made.status_code == 201, made.text
        ended = browser.cookies["hg_session"]
        assert browser.delete("/api/v1/session", headers=csrf).status_code == 204
        browser.cookies.set("hg_session", ended)  # the ended session's cookie, sent again
        assert browser.get("/api/v1/me").status_code == 401


def _sign_in(member: Member) -> dict[str, str]:
    return {"email": member.email, "password": PASSWORD}


def _entries(http: httpx.Client) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = ok(http.get("/api/v1/audit", params={"limit": 1000}))
    return entries


def test_every_change_leaves_an_audit_entry_its_organizations_admins_read(
    tenants: Tenants,
) -> None:
    t = tenants
    a_admin, x_admin = t.http(t.a_admin.token), t.http(t.x_admin.token)
    key = ok(a_admin.post("/api/v1/keys", json={"name": "audited"}))
    site = ok(x_admin.post("/api/v1/sites", json=t.site_body("audited-site")))
    member_url = f"/api/v1/organizations/{CUSTOMER_A}/members/{t.a_member.user_id}"
    ok(a_admin.put(member_url, json={"role": "member"}))
    a_id, x_id = t.org_ids[CUSTOMER_A], t.org_ids[OPERATOR_X]

    def entry(entries: list[dict[str, Any]], table: str, row_id: str) -> dict[str, Any]:
        found = [e for e in entries if row_id in e["touched"].get(table, [])]
        assert len(found) == 1, (table, row_id, entries)
        return found[0]

    a_entries, x_entries = _entries(a_admin), _entries(x_admin)
    made_key = entry(a_entries, "api_keys", key["id"])
    assert made_key["actor"] == f"user:{t.a_admin.user_id}"
    assert (made_key["organization_id"], made_key["method"]) == (a_id, "POST")
    made_site = entry(x_entries, "sites", site["id"])
    assert made_site["actor"] == f"user:{t.x_admin.user_id}"
    assert (made_site["organization_id"], made_site["path"]) == (x_id, "/api/v1/sites")
    role_changes = [e for e in a_entries if e["path"] == member_url and e["method"] == "PUT"]
    assert role_changes
    assert role_changes[0]["actor"] == f"user:{t.a_admin.user_id}"
    assert role_changes[0]["touched"].get("memberships"), role_changes[0]
    # Each organization's admins read their own entries only; the platform reads them all.
    assert {e["organization_id"] for e in a_entries} == {a_id}
    assert {e["organization_id"] for e in x_entries} == {x_id}
    every = {e["id"] for e in _entries(t.http(t.platform))}
    assert {made_key["id"], made_site["id"]} <= every


# Sign-in throttling and invite-only sign-up: a server of their own, with these settings.
ATTEMPTS = 3


@pytest.fixture
def strict_server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    settings = server_settings(
        tmp_path / "home", database_url, signup="invite", signin_per_account=ATTEMPTS
    )
    with LiveServer(settings) as live:
        yield live


def test_sign_in_is_throttled_per_account_and_says_when_to_try_again(
    strict_server: LiveServer,
) -> None:
    with strict_server.http() as admin, strict_server.http(token=None) as anyone:
        code = ok(admin.post("/api/v1/invites", json={"kind": "customer"}))["code"]
        body = {"email": "owner@throttled.test", "password": PASSWORD,
                "organization": "throttled", "kind": "customer", "invite": code}  # fmt: skip
        assert anyone.post("/api/v1/signup", json=body).status_code == 201  # attempt 1
        wrong = {"email": body["email"], "password": "not the password"}
        for _ in range(ATTEMPTS - 1):
            assert anyone.post("/api/v1/login", json=wrong).status_code == 401
        right = {"email": body["email"], "password": PASSWORD}
        refused = anyone.post("/api/v1/login", json=right)  # even the right one, while refused
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["retry-after"]) >= 1
        # Another account, from the same address, is not held back by this one's attempts.
        other = {"email": "nobody@throttled.test", "password": "not the password"}
        assert anyone.post("/api/v1/login", json=other).status_code == 401


def test_invite_only_sign_up_needs_a_code_the_platform_made(strict_server: LiveServer) -> None:
    with strict_server.http() as admin, strict_server.http(token=None) as anyone:
        body = {"email": "new@invited.test", "password": PASSWORD,
                "organization": "invited", "kind": "operator"}  # fmt: skip
        assert anyone.post("/api/v1/signup", json=body).status_code == 403
        made = admin.post("/api/v1/invites", json={"kind": "operator"})
        assert made.status_code == 201, made.text
        customer_code = ok(admin.post("/api/v1/invites", json={"kind": "customer"}))["code"]
        mismatched = anyone.post("/api/v1/signup", json=body | {"invite": customer_code})
        assert mismatched.status_code == 403  # a customer's invite signs up no operator
        signed = anyone.post("/api/v1/signup", json=body | {"invite": made.json()["code"]})
        assert signed.status_code == 201, signed.text
        assert signed.json()["role"] == "admin"
        again = body | {"email": "other@invited.test", "organization": "invited-2"}
        used = anyone.post("/api/v1/signup", json=again | {"invite": made.json()["code"]})
        assert used.status_code == 403  # an invite signs up one organization
        assert re.search("invite", used.json()["detail"])
