"""Schema-driven fuzzing of a live control plane's REST API with schemathesis.

Every operation of the server's own OpenAPI document is called with generated requests, valid
(positive) and invalid (negative) ones, each with the credential its routes take: an admin
token, a gateway token, or a joined node's credential. Or, as a tenant, every operation with the
personal token of a customer's or an operator's admin (from sign-up): then no answer may hold
an id of what another organization owns. Each answer is checked: never a 5xx, its status
documented, its content type and body as documented. Used by the test suite (a few cases per
operation) and by `bench/rest_fuzz.py` (thousands).
"""

from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Literal

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hashgrid.agent.fingerprint import collect
from hashgrid.contracts.agent import PROTOCOL_HEADER
from hashgrid.server.policy import RULES
from hashgrid.server.principal import CallerRole

from support.live import ADMIN_TOKEN, LiveServer
from support.tenants import PASSWORD, POWER_MODEL, ok

# Not schemathesis's `negative_data_rejection`: it counts as accepted invalid data what HTTP
# leaves open (a query parameter sent twice, which FastAPI reads as its last value).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Long polls end at once: the fuzzed server caps their wait near 0 (`long_poll_max_s`), so they
# are fuzzed like any other route instead of holding each case for seconds.
LONG_POLL_MAX_S = 0.01
MAX_SHOWN = 2000  # characters of a failing case's curl and message
SITE, NODE, CUSTOMER, MODEL = "fuzz-site", "fuzz-node", "fuzz-customer", "fuzz-model"
# Who the cases are sent as: the admin (with a node's and a gateway's credentials where their
# routes take them), or the admin of a customer or an operator that signed up.
Caller = Literal["admin", "customer", "operator"]
CALLERS: tuple[Caller, ...] = ("admin", "customer", "operator")
TENANT_ROLES = {"customer": CallerRole.CUSTOMER_ADMIN, "operator": CallerRole.OPERATOR_ADMIN}


@dataclass
class FuzzReport:
    """What a fuzz run found, by operation ("METHOD /path")."""

    cases: int = 0
    server_errors: Counter[str] = field(default_factory=Counter)
    leaks: Counter[str] = field(default_factory=Counter)  # answers holding another's ids
    violations: Counter[str] = field(default_factory=Counter)  # "op: what" -> count
    first_failure: dict[str, str] = field(default_factory=dict)  # one message per kind

    def failures(self) -> str:
        """Each kind of failure once, with the first message of its kind."""
        return "\n\n".join(f"{kind}\n{message}" for kind, message in self.first_failure.items())


class Fleet:
    """What the fuzzed server holds before the first case: a site of the platform's with a power
    model, a node joined to it, a customer with a key and a usage record, a model and its
    deployment. Cases are generated with free path parameters and again with known names, so
    that they reach past the lookups: these, or, as a tenant, the tenant's own (a customer's
    key; an operator's site, with a power model, and node).

    As the admin, agent routes take the node's credential, gateway feed routes a gateway token,
    every other route the admin's. As a tenant, every route takes the tenant's token, and
    `foreign` holds the ids and names of what the platform and the customer own: none may
    appear in an answer."""

    def __init__(self, server: LiveServer, caller: Caller = "admin") -> None:
        with server.http() as admin:
            for method, path, body in [
                ("POST", "/api/v1/sites", {"name": SITE, "region": "us-east", "country": "US",
                                           "power_mw": 10.0}),
                ("PUT", f"/api/v1/sites/{SITE}/power", POWER_MODEL),
                ("POST", "/api/v1/models", {"name": MODEL, "source": "/nowhere/fuzz.gguf",
                                            "size_bytes": 1_000_000}),
                ("POST", "/api/v1/deployments", {"model": MODEL, "replicas": 0}),
            ]:  # fmt: skip
                admin.request(method, path, json=body).raise_for_status()
            customer_body = {"name": CUSTOMER, "kind": "customer"}
            customer = ok(admin.post("/api/v1/organizations", json=customer_body))
            key = ok(admin.post("/api/v1/keys", json={"customer": CUSTOMER}))
            gateway = admin.post("/api/v1/tokens", json={"name": "fuzz-gw", "role": "gateway"})
            site = ok(admin.get(f"/api/v1/sites/{SITE}"))
            platform = [o["id"] for o in ok(admin.get("/api/v1/organizations"))
                        if o["name"] == "platform"]  # fmt: skip
        node = server.join_node(SITE, NODE)
        node_id = node.headers["x-node-id"]
        self.gateway = {"authorization": f"Bearer {gateway.json()['token']}"}
        usage = _record_usage(server, self.gateway, key["id"], customer["id"], node_id)
        self.known = {
            "/api/v1/sites/": SITE,
            "/api/v1/organizations/": CUSTOMER,
            "/api/v1/models/": MODEL,
            "/api/v1/deployments/": MODEL,
            "/api/v1/keys/": key["id"],
            "/api/v1/nodes/": node_id,
        }
        self.own = {"authorization": f"Bearer {ADMIN_TOKEN}"}  # the fuzzed caller's credential
        self.node = {
            "authorization": node.headers["authorization"],
            PROTOCOL_HEADER: node.headers[PROTOCOL_HEADER],
        }
        node.close()
        self.caller = caller
        self.foreign: frozenset[str] = frozenset()
        if caller != "admin":
            self.own, self.known = _tenant(server, caller)
            self.foreign = frozenset(
                [*platform, SITE, site["id"], NODE, node_id, CUSTOMER, customer["id"],
                 key["id"], usage]
            )  # fmt: skip

    def headers_for(self, path: str) -> dict[str, str]:
        if self.caller != "admin":
            return self.own
        if path.startswith("/api/v1/agent/"):
            return self.node
        if path.startswith("/api/v1/gateway/"):
            return self.gateway
        return self.own

    def path_parameters(self, operation: Any) -> dict[str, str] | None:
        """The known name for `operation`'s one path parameter, if any. Revoking the node is
        left to free names: every agent route's case after it would answer 401."""
        names = [parameter.name for parameter in operation.path_parameters]
        if len(names) != 1 or operation.path.endswith("/revoke"):
            return None
        for prefix, value in self.known.items():
            if operation.path.startswith(prefix):
                return {names[0]: value}
        return None

    def rotated(self, path: str, status: int, body: Any) -> None:
        """After a rotate the old node credential stops working: go on with the new one."""
        if path == "/api/v1/agent/rotate" and status == 200:
            self.node = {**self.node, "authorization": f"Bearer {body['credential']}"}

    def leaked(self, body: str) -> list[str]:
        """The foreign ids and names an answer's body holds."""
        return sorted(i for i in self.foreign if i in body)


def _record_usage(
    server: LiveServer, gateway: dict[str, str], key_id: str, customer_id: str, node_id: str
) -> str:
    """A usage record of the customer's key, served by the node, sent as a gateway sends it."""
    record = {
        "request_id": "fuzz-request", "key_id": key_id, "customer_id": customer_id,
        "model": MODEL, "endpoint": "/v1/chat/completions", "replica_id": None,
        "node_id": node_id, "site": SITE, "status_code": 200, "prompt_tokens": 5,
        "completion_tokens": 7, "ttft_ms": 1.5, "duration_ms": 9.0,
        "started_at": "2026-11-21T00:00:00Z",
    }  # fmt: skip
    with server.http(token=None) as http:
        ok(http.post("/api/v1/gateway/usage", json={"records": [record]}, headers=gateway))
    return "fuzz-request"


def _tenant(server: LiveServer, kind: Caller) -> tuple[dict[str, str], dict[str, str]]:
    """A customer or operator signed up, with a key (customer) or a site with a power model
    and a node joined to it (operator): its admin's headers, and its own names by path."""
    name = f"fuzzed-{kind}"
    body = {"email": f"admin@{name}.test", "password": PASSWORD, "organization": name,
            "kind": kind}  # fmt: skip
    with server.http(token=None) as anyone:
        token = ok(anyone.post("/api/v1/signup", json=body))["token"]
    known = {"/api/v1/organizations/": name, "/api/v1/models/": MODEL,
             "/api/v1/deployments/": MODEL}  # fmt: skip
    with server.http(token=token) as own:
        if kind == "customer":
            known["/api/v1/keys/"] = ok(own.post("/api/v1/keys", json={}))["id"]
        else:
            site = {"name": f"{name}-site", "region": "eu-west", "country": "DE",
                    "power_mw": 5.0}  # fmt: skip
            ok(own.post("/api/v1/sites", json=site))
            ok(own.put(f"/api/v1/sites/{site['name']}/power", json=POWER_MODEL))
            join = ok(own.post(f"/api/v1/sites/{site['name']}/join-tokens"))["token"]
            fingerprint = collect().model_dump(mode="json")
            agent = {"join_token": join, "name": f"{name}-node", "fingerprint": fingerprint}
            joined = ok(own.post("/api/v1/agent/join", json=agent))
            known["/api/v1/sites/"] = site["name"]
            known["/api/v1/nodes/"] = joined["node_id"]
    return {"authorization": f"Bearer {token}"}, known


def fuzz(
    server: LiveServer, examples_per_operation: int, at_least: int = 0, caller: Caller = "admin"
) -> FuzzReport:
    """Fuzz every operation of `server`'s API as `caller`: `examples_per_operation` valid and
    as many invalid cases at most (fewer where hypothesis runs out of distinct inputs), and as
    many valid ones again with a known name in the path where it takes one; sweeps again over
    every operation, with new cases, until `at_least` cases were sent.

    As a tenant, only the operations the policy admits it to, and only valid cases: the others
    are refused before any handler runs, and invalid input is refused as it is for the admin."""
    fleet = Fleet(server, caller)
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    # Each case is sent with the credential its route takes (`Fleet`), never a generated one.
    schema.config.generation.update(with_security_parameters=False)
    operations = [result.ok() for result in schema.get_all_operations()]
    if caller != "admin":
        role = TENANT_ROLES[caller]
        operations = [o for o in operations if role in RULES[(o.method.upper(), o.path)]]
    modes = [GenerationMode.POSITIVE]
    if caller == "admin":
        modes.append(GenerationMode.NEGATIVE)
    report = FuzzReport()
    while True:
        for operation in operations:
            passes: list[tuple[GenerationMode, dict[str, str] | None]] = [
                (mode, None) for mode in modes
            ]
            if (known := fleet.path_parameters(operation)) is not None:
                passes.append((GenerationMode.POSITIVE, known))
            for mode, path in passes:
                strategy = operation.as_strategy(generation_mode=mode, path_parameters=path)
                _fuzz(server.url, operation, strategy, mode, fleet, examples_per_operation, report)
        if report.cases >= at_least:
            return report


def _fuzz(
    url: str,
    operation: Any,
    strategy: Any,
    mode: GenerationMode,
    fleet: Fleet,
    examples: int,
    report: FuzzReport,
) -> None:
    """Call `operation` with up to `examples` cases drawn from `strategy`, noting each answer."""
    name = f"{operation.method.upper()} {operation.path}"

    @given(case=strategy)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        ours = fleet.headers_for(operation.path)
        generated = {header.lower(): value for header, value in (case.headers or {}).items()}
        # A negative case may carry a malformed credential or protocol header on purpose: keep
        # it, so that what is sent is what the case says it sent.
        if mode == GenerationMode.POSITIVE:
            case.headers = {**generated, **ours}
        else:
            case.headers = {**ours, **generated}
        response = case.call(base_url=url, timeout=30)
        report.cases += 1
        if response.status_code >= 500:
            report.server_errors[name] += 1
        if leaked := fleet.leaked(response.text):
            kind = f"{name}: holds another organization's {leaked}"
            report.leaks[name] += 1
            report.first_failure.setdefault(kind, case.as_curl_command()[:MAX_SHOWN])
        if response.status_code == 200 and "json" in response.headers.get("content-type", [""])[0]:
            fleet.rotated(operation.path, response.status_code, response.json())
        try:
            case.validate_response(response, checks=CHECKS, headers=dict(case.headers))
        except FailureGroup as group:
            for failure in group.exceptions:
                kind = f"{name}: {failure.title}"
                report.violations[kind] += 1
                # Cut: a generated body can run to tens of kilobytes.
                example = f"{case.as_curl_command()[:MAX_SHOWN]}\n{str(failure)[:MAX_SHOWN]}"
                report.first_failure.setdefault(kind, example)

    with suppress(Unsatisfiable):  # no negative request for an operation that takes no input
        run()
