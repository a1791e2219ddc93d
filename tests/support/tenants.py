"""Tenants on a live control plane, made the way their users make them: two customers (A, B)
and two operators (X, Y) signed up through the API, each with what it owns, and a credential
of every kind of caller. Used by the authorization matrix, the cross-tenant tests and the
fuzzing as a customer or an operator."""

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from hashgrid.agent.fingerprint import collect

from support import postgres
from support.live import ADMIN_TOKEN, LiveServer, server_settings

PASSWORD = "a long enough password"
CUSTOMER_A, CUSTOMER_B = "cust-a", "cust-b"
OPERATOR_X, OPERATOR_Y = "op-x", "op-y"
SITE_X, SITE_Y = "site-x", "site-y"
MODEL = "tenant-model"
POWER_MODEL = {
    "asics": [{"model": "Antminer S21", "count": 100}],
    "price": {"kind": "fixed", "usd_per_mwh": 40.0},
    "hashprice": {"kind": "constant", "usd_per_ph_day": 50.0},
}
# Sign-ups, sign-ins and invites made by one test's callers, all from one address: the
# throttle's defaults would refuse them; tests of the throttle set their own.
UNTHROTTLED = {"signin_per_account": 10_000, "signin_per_address": 10_000}


@dataclass(frozen=True)
class Member:
    """A user of one organization, with the personal token they signed in with."""

    user_id: str
    email: str
    token: str


def ok(response: httpx.Response) -> Any:
    """The JSON of a 2xx answer; fails with the answer's text otherwise."""
    assert response.is_success, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json() if response.content else None


class Tenants:
    """On `server`: customers A and B (an admin each, and a member of A), operators X and Y (an
    admin each, a site each with a power model, a node joined to each site and a second one at
    X's), an API key of each customer, a gateway token, a model with a public deployment, and a
    usage record of each customer's key, served by X's node for A and Y's node for B."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self._numbers = itertools.count(1)
        self._clients: dict[str | None, httpx.Client] = {}
        self.platform = ADMIN_TOKEN
        self.fingerprint = collect().model_dump(mode="json")
        self.a_admin = self.sign_up(CUSTOMER_A, "customer")
        self.a_member = self.invite(CUSTOMER_A, self.a_admin.token, "member")
        self.b_admin = self.sign_up(CUSTOMER_B, "customer")
        self.x_admin = self.sign_up(OPERATOR_X, "operator")
        self.y_admin = self.sign_up(OPERATOR_Y, "operator")
        self.org_ids = {
            name: ok(self.http(m.token).get("/api/v1/me"))["memberships"][0]["organization_id"]
            for name, m in [
                (CUSTOMER_A, self.a_admin),
                (CUSTOMER_B, self.b_admin),
                (OPERATOR_X, self.x_admin),
                (OPERATOR_Y, self.y_admin),
            ]
        }
        for site, admin in [(SITE_X, self.x_admin), (SITE_Y, self.y_admin)]:
            operator = self.http(admin.token)
            ok(operator.post("/api/v1/sites", json=self.site_body(site)))
            ok(operator.put(f"/api/v1/sites/{site}/power", json=POWER_MODEL))
        self.node_x, self.node_x_token = self.join(SITE_X, self.x_admin.token)
        self.spare_node_x, _ = self.join(SITE_X, self.x_admin.token)
        self.node_y, self.node_y_token = self.join(SITE_Y, self.y_admin.token)
        self.key_a = self.create_key(self.a_admin.token)
        self.key_b = self.create_key(self.b_admin.token)
        admin = self.http(self.platform)
        gateway = {"name": "tenants-gw", "role": "gateway"}
        self.gateway = ok(admin.post("/api/v1/tokens", json=gateway))["token"]
        model = {"name": MODEL, "source": "/nowhere/tenant.gguf", "size_bytes": 1_000_000}
        ok(admin.post("/api/v1/models", json=model))
        ok(admin.post("/api/v1/deployments", json={"model": MODEL, "replicas": 0}))
        self.usage_a = self.record_usage(self.key_a, CUSTOMER_A, self.node_x, SITE_X)
        self.usage_b = self.record_usage(self.key_b, CUSTOMER_B, self.node_y, SITE_Y)

    def http(self, token: str | None) -> httpx.Client:
        """A client calling with `token` (None: anonymous), kept for the next call with it."""
        if token not in self._clients:
            self._clients[token] = self.server.http(token=token)
        return self._clients[token]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    def unique(self, prefix: str) -> str:
        """A name no other call of this run used."""
        return f"{prefix}-{next(self._numbers)}"

    def sign_up(self, organization: str, kind: str) -> Member:
        """A new organization of `kind` and its admin, through `POST /api/v1/signup`."""
        email = f"{self.unique('admin')}@{organization}.test"
        body = {"email": email, "password": PASSWORD, "organization": organization, "kind": kind}
        signed = ok(self.http(None).post("/api/v1/signup", json=body))
        return Member(signed["user"]["id"], email, signed["token"])

    def invite(self, organization: str, admin_token: str, role: str) -> Member:
        """A new user of `organization` with `role`: invited by its admin, joined by the code."""
        invite = {"role": role}
        url = f"/api/v1/organizations/{organization}/invites"
        code = ok(self.http(admin_token).post(url, json=invite))["code"]
        email = f"{self.unique(role)}@{organization}.test"
        body = {"code": code, "email": email, "password": PASSWORD}
        signed = ok(self.http(None).post("/api/v1/invites/accept", json=body))
        return Member(signed["user"]["id"], email, signed["token"])

    def join_token(self, site: str, operator_token: str) -> str:
        url = f"/api/v1/sites/{site}/join-tokens"
        token: str = ok(self.http(operator_token).post(url))["token"]
        return token

    def join(self, site: str, operator_token: str) -> tuple[str, str]:
        """A node joined to `site` with a join token its operator made: its id and credential."""
        body = {
            "join_token": self.join_token(site, operator_token),
            "name": self.unique("node"),
            "fingerprint": self.fingerprint,
        }
        joined = ok(self.http(None).post("/api/v1/agent/join", json=body))
        return joined["node_id"], joined["credential"]

    def create_key(self, customer_admin_token: str) -> str:
        body = {"name": self.unique("key")}
        key_id: str = ok(self.http(customer_admin_token).post("/api/v1/keys", json=body))["id"]
        return key_id

    def site_body(self, name: str) -> dict[str, Any]:
        return {"name": name, "region": "us-east", "country": "US", "power_mw": 10.0}

    def record_usage(self, key_id: str, customer: str, node_id: str, site: str) -> str:
        """A usage record of `key_id`'s request served by `node_id`, sent as a gateway sends
        it; its request id."""
        request_id = self.unique("request")
        record = {
            "request_id": request_id, "key_id": key_id, "customer_id": self.org_ids[customer],
            "model": MODEL, "endpoint": "/v1/chat/completions", "replica_id": None,
            "node_id": node_id, "site": site, "status_code": 200, "prompt_tokens": 5,
            "completion_tokens": 7, "ttft_ms": 1.5, "duration_ms": 9.0,
            "started_at": "2026-11-21T00:00:00Z",
        }  # fmt: skip
        ack = ok(self.http(self.gateway).post("/api/v1/gateway/usage", json={"records": [record]}))
        assert ack["accepted"] == 1, ack
        return request_id


@contextmanager
def served_tenants(backend: str, folder: Path, **settings: Any) -> Iterator[Tenants]:
    """`Tenants` on a live server of their own, on a fresh database of `backend`, unthrottled
    unless `settings` say otherwise."""
    with (
        postgres.database_url(backend, folder) as url,
        LiveServer(server_settings(folder / "home", url, **(UNTHROTTLED | settings))) as server,
    ):
        tenants = Tenants(server)
        try:
            yield tenants
        finally:
            tenants.close()
