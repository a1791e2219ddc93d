"""The authorization matrix, on SQLite and PostgreSQL: every route of the control plane called
by every kind of caller, each answer checked against `MATRIX`, the table below. The table is the
specification, written here independently of server/policy.py, which it holds to account; a
route of the app that the table does not name fails the test, so no route goes out without a
declared policy.

Callers (the columns): anon (no credential); am, aa: a member and an admin of customer A;
ba: the admin of customer B; xa, ya: the admins of operators X and Y; node: a node of X's site;
gw: a gateway token; pa: the platform admin token. A cell says what the caller gets: `ok`, the
handler's answer (2xx); a number, that status. Where a path names an object, it is A's (customer
routes) or X's (operator routes), and the other tenant gets 404, as for an id that does not
exist; a role that may not call the route at all gets 403 (401 without a credential). Adding a
route is adding its line here (and a sample request in `SAMPLES` if it takes parameters).
"""

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from hashgrid.common.ca import new_key_and_request
from hashgrid.contracts.agent import PROTOCOL_HEADER
from hashgrid.server.app import create_app
from hashgrid.server.errors import PROBLEM_JSON
from hashgrid.server.policy import routes_without_rule

from support import postgres
from support.live import server_settings
from support.tenants import (
    CUSTOMER_A,
    MODEL,
    OPERATOR_X,
    PASSWORD,
    POWER_MODEL,
    SITE_X,
    Tenants,
    ok,
    served_tenants,
)

MATRIX = """
method path                                               anon am  aa  ba  xa  ya  node gw  pa
GET    /healthz                                           ok   ok  ok  ok  ok  ok  ok   ok  ok
GET    /metrics                                           ok   ok  ok  ok  ok  ok  ok   ok  ok
POST   /api/v1/signup                                     ok   ok  ok  ok  ok  ok  ok   ok  ok
POST   /api/v1/login                                      ok   ok  ok  ok  ok  ok  ok   ok  ok
POST   /api/v1/session                                    ok   ok  ok  ok  ok  ok  ok   ok  ok
DELETE /api/v1/session                                    401  400 400 400 400 400 403  403 400
POST   /api/v1/invites/accept                             ok   ok  ok  ok  ok  ok  ok   ok  ok
POST   /api/v1/invites                                    401  403 403 403 403 403 403  403 ok
GET    /api/v1/me                                         401  ok  ok  ok  ok  ok  403  403 ok
GET    /api/v1/me/tokens                                  401  ok  ok  ok  ok  ok  403  403 400
POST   /api/v1/me/tokens                                  401  ok  ok  ok  ok  ok  403  403 400
DELETE /api/v1/me/tokens/{token_id}                       401  404 ok  404 404 404 403  403 400
POST   /api/v1/organizations                              401  403 403 403 403 403 403  403 ok
GET    /api/v1/organizations                              401  ok  ok  ok  ok  ok  403  403 ok
GET    /api/v1/organizations/{name}                       401  ok  ok  404 404 404 403  403 ok
PUT    /api/v1/organizations/{name}/limits                401  403 403 403 403 403 403  403 ok
GET    /api/v1/organizations/{name}/members               401  ok  ok  404 404 404 403  403 ok
PUT    /api/v1/organizations/{name}/members/{user_id}     401  403 ok  404 404 404 403  403 ok
DELETE /api/v1/organizations/{name}/members/{user_id}     401  403 ok  404 404 404 403  403 ok
POST   /api/v1/organizations/{name}/invites               401  403 ok  404 404 404 403  403 ok
GET    /api/v1/audit                                      401  403 ok  ok  ok  ok  403  403 ok
POST   /api/v1/tokens                                     401  403 403 403 403 403 403  403 ok
POST   /api/v1/sites                                      401  403 403 403 ok  ok  403  403 ok
GET    /api/v1/sites                                      401  403 403 403 ok  ok  403  403 ok
GET    /api/v1/sites/{name}                               401  403 403 403 ok  404 403  403 ok
POST   /api/v1/sites/{name}/join-tokens                   401  403 403 403 ok  404 403  403 ok
GET    /api/v1/sites/{name}/power                         401  403 403 403 ok  404 403  403 ok
PUT    /api/v1/sites/{name}/power                         401  403 403 403 ok  404 403  403 ok
POST   /api/v1/sites/{name}/curtailments                  401  403 403 403 ok  404 403  403 ok
DELETE /api/v1/sites/{name}/curtailments                  401  403 403 403 ok  404 403  403 ok
GET    /api/v1/sites/{name}/power/plan                    401  403 403 403 ok  404 403  403 ok
GET    /api/v1/sites/{name}/power/history                 401  403 403 403 ok  404 403  403 ok
GET    /api/v1/nodes                                      401  403 403 403 ok  ok  403  403 ok
GET    /api/v1/nodes/{node}                               401  403 403 403 ok  404 403  403 ok
POST   /api/v1/nodes/{node}/cordon                        401  403 403 403 ok  404 403  403 ok
POST   /api/v1/nodes/{node}/uncordon                      401  403 403 403 ok  404 403  403 ok
POST   /api/v1/nodes/{node}/drain                         401  403 403 403 ok  404 403  403 ok
POST   /api/v1/nodes/{node}/revoke                        401  403 403 403 ok  404 403  403 ok
POST   /api/v1/nodes/{node}/verify                        401  403 403 403 ok  404 403  403 ok
POST   /api/v1/models                                     401  403 403 403 403 403 403  403 ok
GET    /api/v1/models                                     401  ok  ok  ok  ok  ok  403  403 ok
GET    /api/v1/models/{name:path}                         401  ok  ok  ok  ok  ok  403  403 ok
GET    /api/v1/prices                                     401  ok  ok  ok  ok  ok  403  403 ok
POST   /api/v1/prices                                     401  403 403 403 403 403 403  403 ok
GET    /api/v1/discounts                                  401  ok  ok  ok  403 403 403  403 ok
POST   /api/v1/discounts                                  401  403 403 403 403 403 403  403 ok
POST   /api/v1/deployments                                401  403 403 403 403 403 403  403 ok
GET    /api/v1/deployments                                401  ok  ok  ok  403 403 403  403 ok
GET    /api/v1/deployments/{name:path}                    401  ok  ok  ok  403 403 403  403 ok
PATCH  /api/v1/deployments/{name:path}                    401  403 403 403 403 403 403  403 ok
DELETE /api/v1/deployments/{name:path}                    401  403 403 403 403 403 403  403 ok
GET    /api/v1/replicas                                   401  403 403 403 403 403 403  403 ok
POST   /api/v1/keys                                       401  403 ok  404 403 403 403  403 ok
GET    /api/v1/keys                                       401  ok  ok  ok  403 403 403  403 ok
PUT    /api/v1/keys/{key_id}/limits                       401  403 ok  404 403 403 403  403 ok
DELETE /api/v1/keys/{key_id}                              401  403 ok  404 403 403 403  403 ok
GET    /api/v1/usage                                      401  ok  ok  ok  ok  ok  403  403 ok
GET    /api/v1/usage/summary                              401  ok  ok  ok  ok  ok  403  403 ok
GET    /api/v1/usage/rejected                             401  403 403 403 403 403 403  403 ok
POST   /api/v1/contracts                                  401  403 403 403 403 403 403  403 ok
GET    /api/v1/contracts                                  401  ok  ok  ok  403 403 403  403 ok
GET    /api/v1/contracts/{contract_id}                    401  ok  ok  404 403 403 403  403 ok
POST   /api/v1/contracts/{contract_id}/cancel             401  403 403 403 403 403 403  403 ok
GET    /api/v1/invoices                                   401  ok  ok  ok  403 403 403  403 ok
POST   /api/v1/invoices                                   401  403 403 403 403 403 403  403 ok
GET    /api/v1/invoices/draft                             401  ok  ok  404 403 403 403  403 ok
GET    /api/v1/invoices/{number}                          401  ok  ok  404 403 403 403  403 ok
GET    /api/v1/invoices/{number}/csv                      401  ok  ok  404 403 403 403  403 ok
GET    /api/v1/invoices/{number}/pdf                      401  ok  ok  404 403 403 403  403 ok
GET    /api/v1/invoices/{number}/recomputation            401  ok  ok  404 403 403 403  403 ok
POST   /api/v1/invoices/{number}/pay                      401  403 403 403 403 403 403  403 ok
POST   /api/v1/invoices/{number}/void                     401  403 403 403 403 403 403  403 ok
GET    /api/v1/statements                                 401  403 403 403 ok  404 403  403 ok
GET    /api/v1/payouts                                    401  403 403 403 403 403 403  403 ok
GET    /api/v1/ledger                                     401  403 403 403 403 403 403  403 ok
PUT    /api/v1/organizations/{name}/share                 401  403 403 403 403 403 403  403 ok
POST   /api/v1/agent/join                                 ok   ok  ok  ok  ok  ok  ok   ok  ok
POST   /api/v1/agent/heartbeat                            401  403 403 403 403 403 ok   403 403
POST   /api/v1/agent/rotate                               401  403 403 403 403 403 ok   403 403
GET    /api/v1/agent/assignments                          401  403 403 403 403 403 ok   403 403
PUT    /api/v1/agent/replicas/{replica_id}/state          401  403 403 403 403 403 404  403 403
POST   /api/v1/agent/verification                         401  403 403 403 403 403 ok   403 403
GET    /api/v1/agent/miners                               401  403 403 403 403 403 ok   403 403
POST   /api/v1/agent/miners/results                       401  403 403 403 403 403 ok   403 403
GET    /api/v1/gateway/view                               401  403 403 403 403 403 403  ok  ok
POST   /api/v1/gateway/usage                              401  403 403 403 403 403 403  ok  ok
POST   /api/v1/gateway/demand                             401  403 403 403 403 403 403  ok  ok
POST   /api/v1/gateway/spot-checks                        401  403 403 403 403 403 403  ok  ok
POST   /api/v1/gateway/certificate                        401  403 403 403 403 403 403  ok  ok
GET    /api/v1/ca                                         ok   ok  ok  ok  ok  ok  ok   ok  ok
"""

Route = tuple[str, str]
Maker = Callable[[Tenants], Any]


def _parse(table: str) -> tuple[list[str], dict[Route, list[str]]]:
    header, *rows = table.strip().splitlines()
    callers = header.split()[2:]
    expected = {}
    for row in rows:
        method, path, *cells = row.split()
        assert len(cells) == len(callers), f"{method} {path}: {len(cells)} cells"
        assert (method, path) not in expected, f"{method} {path} is in the table twice"
        expected[(method, path)] = cells
    return callers, expected


CALLERS, EXPECTED = _parse(MATRIX)


@dataclass(frozen=True)
class Sample:
    """What a route is called with: its path (the template itself where it has no parameters),
    and its JSON body, each either given or made by a function of the tenants. A path that is
    made is made again after a call succeeds: what a destructive call used up (a key revoked, a
    member removed) is not what the next caller gets."""

    path: str | Maker | None = None
    body: Any = None

    def make_path(self, template: str, tenants: Tenants) -> str:
        if self.path is None:
            return template
        return self.path(tenants) if callable(self.path) else self.path

    def make_body(self, tenants: Tenants) -> Any:
        return self.body(tenants) if callable(self.body) else self.body


def _new_token(t: Tenants) -> str:
    """A new personal token of A's admin: the one a revocation uses up."""
    made = ok(t.http(t.a_admin.token).post("/api/v1/me/tokens", json={"name": t.unique("pat")}))
    return f"/api/v1/me/tokens/{made['id']}"


def _curtailed(t: Tenants) -> str:
    """X's site under a curtailment (made by the platform): the one a restore ends."""
    curtailments = f"/api/v1/sites/{SITE_X}/curtailments"
    ok(t.http(t.platform).post(curtailments, json={"target_mw": 5.0}))
    return curtailments


def _new_deployment(t: Tenants) -> str:
    name = t.unique("deployment")
    ok(t.http(t.platform).post("/api/v1/deployments", json={"model": MODEL, "name": name}))
    return f"/api/v1/deployments/{name}"


def _contract(t: Tenants) -> dict[str, Any]:
    """A contract of A's on the public deployment, far enough ahead that nothing is placed."""
    return {
        "customer": CUSTOMER_A, "model": MODEL, "replicas": 1, "price_per_replica_hour": "2.5",
        "starts_at": "2099-01-01T00:00:00Z", "ends_at": "2099-01-02T00:00:00Z",
    }  # fmt: skip


def _new_contract(t: Tenants) -> str:
    made = ok(t.http(t.platform).post("/api/v1/contracts", json=_contract(t)))
    return f"/api/v1/contracts/{made['id']}"


def _new_member(t: Tenants) -> str:
    member = t.invite(CUSTOMER_A, t.a_admin.token, "member")
    return f"/api/v1/organizations/{CUSTOMER_A}/members/{member.user_id}"


def _sign_in(t: Tenants) -> dict[str, str]:
    return {"email": t.a_member.email, "password": PASSWORD}


def _join(t: Tenants) -> dict[str, Any]:
    token = t.join_token(SITE_X, t.x_admin.token)
    return {"join_token": token, "name": t.unique("node"), "fingerprint": t.fingerprint}


MONTHS = itertools.count()  # the months invoices of A are issued for, one after another
ISSUED: dict[int, str] = {}  # an invoice of A per tenants, for the routes that only read it


def _billed_month(t: Tenants) -> str:
    """A month (from 2020 on, before the tenants' usage) with a priced request of A in it."""
    admin = t.http(t.platform)
    since = "2020-01-01T00:00:00Z"
    book = ok(admin.get("/api/v1/prices", params={"model": MODEL}))
    if not any(p["effective_from"].startswith("2020-01-01") for p in book):
        price = {"model": MODEL, "prompt": "1", "completion": "2", "effective_from": since}
        ok(admin.post("/api/v1/prices", json=price))
    year, month = divmod(next(MONTHS), 12)
    period = f"{2020 + year}-{month + 1:02d}"
    record = {
        "request_id": t.unique("billed"), "key_id": t.key_a, "customer_id": t.org_ids[CUSTOMER_A],
        "model": MODEL, "endpoint": "/v1/chat/completions", "replica_id": None,
        "node_id": t.node_x, "site": SITE_X, "status_code": 200, "prompt_tokens": 5,
        "completion_tokens": 7, "ttft_ms": 1.5, "duration_ms": 9.0,
        "started_at": f"{period}-02T00:00:00Z",
    }  # fmt: skip
    ok(t.http(t.gateway).post("/api/v1/gateway/usage", json={"records": [record]}))
    return period


def _new_invoice(t: Tenants) -> str:
    """A's invoice of a month of its own, newly issued: the one a payment or a void uses up."""
    body = {"customer": CUSTOMER_A, "period": _billed_month(t)}
    number: str = ok(t.http(t.platform).post("/api/v1/invoices", json=body))["number"]
    return number


def _invoice(tail: str = "") -> Maker:
    """The path of an invoice of A (issued once per tenants), with `tail`."""

    def path(t: Tenants) -> str:
        if id(t) not in ISSUED:
            ISSUED[id(t)] = _new_invoice(t)
        return f"/api/v1/invoices/{ISSUED[id(t)]}{tail}"

    return path


A = f"/api/v1/organizations/{CUSTOMER_A}"
SITE = f"/api/v1/sites/{SITE_X}"
SAMPLES: dict[Route, Sample] = {
    ("POST", "/api/v1/signup"): Sample(
        body=lambda t: {
            "email": f"{t.unique('someone')}@new.test",
            "password": PASSWORD,
            "organization": t.unique("new"),
            "kind": "customer",
        }
    ),
    ("POST", "/api/v1/login"): Sample(body=_sign_in),
    ("POST", "/api/v1/session"): Sample(body=_sign_in),
    ("POST", "/api/v1/invites/accept"): Sample(
        body=lambda t: {
            "code": ok(t.http(t.a_admin.token).post(f"{A}/invites", json={}))["code"],
            "email": f"{t.unique('joiner')}@{CUSTOMER_A}.test",
            "password": PASSWORD,
        }
    ),
    ("POST", "/api/v1/invites"): Sample(body={"kind": "customer"}),
    ("POST", "/api/v1/me/tokens"): Sample(body=lambda t: {"name": t.unique("pat")}),
    ("DELETE", "/api/v1/me/tokens/{token_id}"): Sample(_new_token),
    ("POST", "/api/v1/organizations"): Sample(
        body=lambda t: {"name": t.unique("org"), "kind": "customer"}
    ),
    ("GET", "/api/v1/organizations/{name}"): Sample(A),
    ("PUT", "/api/v1/organizations/{name}/limits"): Sample(f"{A}/limits", {}),
    ("GET", "/api/v1/organizations/{name}/members"): Sample(f"{A}/members"),
    ("PUT", "/api/v1/organizations/{name}/members/{user_id}"): Sample(
        lambda t: f"{A}/members/{t.a_member.user_id}", {"role": "member"}
    ),
    ("DELETE", "/api/v1/organizations/{name}/members/{user_id}"): Sample(_new_member),
    ("POST", "/api/v1/organizations/{name}/invites"): Sample(f"{A}/invites", {}),
    ("POST", "/api/v1/tokens"): Sample(body={"name": "matrix-gw", "role": "gateway"}),
    ("POST", "/api/v1/sites"): Sample(body=lambda t: t.site_body(t.unique("site"))),
    ("GET", "/api/v1/sites/{name}"): Sample(SITE),
    ("POST", "/api/v1/sites/{name}/join-tokens"): Sample(f"{SITE}/join-tokens"),
    ("GET", "/api/v1/sites/{name}/power"): Sample(f"{SITE}/power"),
    ("PUT", "/api/v1/sites/{name}/power"): Sample(f"{SITE}/power", POWER_MODEL),
    ("POST", "/api/v1/sites/{name}/curtailments"): Sample(
        f"{SITE}/curtailments", {"target_mw": 5.0}
    ),
    ("DELETE", "/api/v1/sites/{name}/curtailments"): Sample(_curtailed),
    ("GET", "/api/v1/sites/{name}/power/plan"): Sample(f"{SITE}/power/plan"),
    ("GET", "/api/v1/sites/{name}/power/history"): Sample(f"{SITE}/power/history"),
    ("GET", "/api/v1/nodes/{node}"): Sample(lambda t: f"/api/v1/nodes/{t.node_x}"),
    ("POST", "/api/v1/nodes/{node}/cordon"): Sample(lambda t: f"/api/v1/nodes/{t.node_x}/cordon"),
    ("POST", "/api/v1/nodes/{node}/uncordon"): Sample(
        lambda t: f"/api/v1/nodes/{t.node_x}/uncordon"
    ),
    ("POST", "/api/v1/nodes/{node}/drain"): Sample(lambda t: f"/api/v1/nodes/{t.node_x}/drain", {}),
    ("POST", "/api/v1/nodes/{node}/revoke"): Sample(
        lambda t: f"/api/v1/nodes/{t.spare_node_x}/revoke"
    ),
    ("POST", "/api/v1/nodes/{node}/verify"): Sample(lambda t: f"/api/v1/nodes/{t.node_x}/verify"),
    ("POST", "/api/v1/models"): Sample(
        body=lambda t: {"name": t.unique("model"), "source": "/nowhere/m.gguf", "size_bytes": 1}
    ),
    ("GET", "/api/v1/models/{name:path}"): Sample(f"/api/v1/models/{MODEL}"),
    ("POST", "/api/v1/prices"): Sample(body={"model": MODEL, "prompt": "1", "completion": "2"}),
    ("POST", "/api/v1/discounts"): Sample(body={"customer": CUSTOMER_A, "percent": "10"}),
    ("POST", "/api/v1/deployments"): Sample(
        body=lambda t: {"model": MODEL, "name": t.unique("deployment"), "replicas": 0}
    ),
    ("GET", "/api/v1/deployments/{name:path}"): Sample(f"/api/v1/deployments/{MODEL}"),
    ("PATCH", "/api/v1/deployments/{name:path}"): Sample(
        f"/api/v1/deployments/{MODEL}", {"replicas": 0}
    ),
    ("DELETE", "/api/v1/deployments/{name:path}"): Sample(_new_deployment),
    ("POST", "/api/v1/keys"): Sample(body={"customer": CUSTOMER_A, "name": "matrix"}),
    ("PUT", "/api/v1/keys/{key_id}/limits"): Sample(lambda t: f"/api/v1/keys/{t.key_a}/limits", {}),
    ("DELETE", "/api/v1/keys/{key_id}"): Sample(
        lambda t: f"/api/v1/keys/{t.create_key(t.a_admin.token)}"
    ),
    ("POST", "/api/v1/contracts"): Sample(body=_contract),
    ("GET", "/api/v1/contracts/{contract_id}"): Sample(_new_contract),
    ("POST", "/api/v1/contracts/{contract_id}/cancel"): Sample(
        lambda t: f"{_new_contract(t)}/cancel"
    ),
    ("POST", "/api/v1/invoices"): Sample(
        body=lambda t: {"customer": CUSTOMER_A, "period": _billed_month(t)}
    ),
    ("GET", "/api/v1/invoices/draft"): Sample(f"/api/v1/invoices/draft?customer={CUSTOMER_A}"),
    ("GET", "/api/v1/invoices/{number}"): Sample(_invoice()),
    ("GET", "/api/v1/invoices/{number}/csv"): Sample(_invoice("/csv")),
    ("GET", "/api/v1/invoices/{number}/pdf"): Sample(_invoice("/pdf")),
    ("GET", "/api/v1/invoices/{number}/recomputation"): Sample(_invoice("/recomputation")),
    ("POST", "/api/v1/invoices/{number}/pay"): Sample(
        lambda t: f"/api/v1/invoices/{_new_invoice(t)}/pay"
    ),
    ("POST", "/api/v1/invoices/{number}/void"): Sample(
        lambda t: f"/api/v1/invoices/{_new_invoice(t)}/void"
    ),
    ("GET", "/api/v1/statements"): Sample(f"/api/v1/statements?operator={OPERATOR_X}"),
    ("PUT", "/api/v1/organizations/{name}/share"): Sample(
        f"/api/v1/organizations/{OPERATOR_X}/share", {"share_bps": 7000}
    ),
    ("POST", "/api/v1/agent/join"): Sample(body=_join),
    ("POST", "/api/v1/agent/heartbeat"): Sample(body={}),
    ("PUT", "/api/v1/agent/replicas/{replica_id}/state"): Sample(
        "/api/v1/agent/replicas/no-such-replica/state", {"status": "ready"}
    ),
    ("POST", "/api/v1/agent/verification"): Sample(body={"error": "no benchmark in this test"}),
    ("POST", "/api/v1/agent/miners/results"): Sample(body={"revision": 0, "results": []}),
    ("POST", "/api/v1/gateway/usage"): Sample(body={"records": []}),
    ("POST", "/api/v1/gateway/demand"): Sample(body={"gateway": "matrix", "models": []}),
    ("POST", "/api/v1/gateway/spot-checks"): Sample(body={"results": []}),
    ("POST", "/api/v1/gateway/certificate"): Sample(
        body={"csr": new_key_and_request("matrix gateway", ["gw.matrix.test"])[1].decode()}
    ),
}
# Walked after every other route: the node's credential changes, and the old one is refused.
WALKED_LAST = [("POST", "/api/v1/agent/rotate")]


def app() -> FastAPI:
    """The control plane's app, never started: for its routes."""
    return create_app(server_settings(Path("/nonexistent"), "sqlite+aiosqlite:///:memory:"))


def app_routes() -> set[Route]:
    """Every (method, path) of the app's API routes, as FastAPI declares them."""
    return {
        (method, context.original_route.path)
        for context in iter_route_contexts(app().routes)
        if isinstance(context.original_route, APIRoute)
        for method in context.original_route.methods
    }


@pytest.fixture(scope="module", params=postgres.BACKENDS)
def tenants(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tenants]:
    """Tenants on one server per backend, for the whole module; over TLS, so the routes of the
    control plane's CA answer."""
    folder = tmp_path_factory.mktemp(request.param)
    with served_tenants(request.param, folder, tls=True) as tenants:
        yield tenants


def test_the_table_names_every_route_of_the_app_and_no_other() -> None:
    """A new route fails here until its line is in `MATRIX`."""
    routes = app_routes()
    assert sorted(routes - set(EXPECTED)) == [], "routes missing from MATRIX"
    assert sorted(set(EXPECTED) - routes) == [], "MATRIX rows for routes the app lacks"
    assert set(SAMPLES) <= routes


def test_the_policy_has_a_rule_for_every_route() -> None:
    assert routes_without_rule(app()) == []


def test_a_route_added_without_a_rule_is_found() -> None:
    """The check walks into included routers, where every route of the app is."""
    grown = app()
    router = APIRouter(prefix="/api/v1/unruled")

    @router.get("")
    async def unruled() -> None: ...

    grown.include_router(router)
    assert routes_without_rule(grown) == [("GET", "/api/v1/unruled")]


def test_every_route_answers_every_caller_as_the_table_says(tenants: Tenants) -> None:
    t = tenants
    credentials = {
        "anon": None,
        "am": t.a_member.token,
        "aa": t.a_admin.token,
        "ba": t.b_admin.token,
        "xa": t.x_admin.token,
        "ya": t.y_admin.token,
        "node": t.node_x_token,
        "gw": t.gateway,
        "pa": t.platform,
    }
    assert list(credentials) == CALLERS
    walk = [route for route in EXPECTED if route not in WALKED_LAST] + WALKED_LAST
    wrong = []
    for method, template in walk:
        sample = SAMPLES.get((method, template), Sample())
        path = sample.make_path(template, t)
        for caller, cell in zip(CALLERS, EXPECTED[(method, template)], strict=True):
            http = t.http(credentials[caller])
            # Every call carries the agent protocol's header, as an agent's do: agent routes
            # require it, the others ignore it.
            response = http.request(
                method, path, json=sample.make_body(t), headers={PROTOCOL_HEADER: "1"}
            )
            http.cookies.clear()  # a session cookie from sign-in would be the next call's
            status = response.status_code
            if not (response.is_success if cell == "ok" else status == int(cell)):
                wrong.append(
                    f"{caller:5} {method} {template}: {cell} expected, got {status} "
                    f"{response.text[:200]}"
                )
            elif not response.is_success:
                assert response.headers["content-type"] == PROBLEM_JSON, response.text
            if response.is_success:
                path = sample.make_path(template, t)
    assert not wrong, "\n".join(wrong)
