"""Who may call each route: declared once, here, for every route of the REST API.

`RULES` maps each route (method and path template) to the callers it admits. `authorize`, a
dependency of the whole app, finds the caller (`auth.authenticate`) and the route's rule before
any handler runs: an anonymous caller a route does not admit gets 401, any other 403. A route
with no rule is refused (500) and stops the server at start (`check_every_route_has_a_rule`), so
a new route cannot go out open by mistake.

The rule says who may call; what the caller sees is its `Principal.scope`: handlers pass it to
their services, which filter by it, so an id of another organization is a 404 there, never a
403 that would tell it exists.
"""

from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute, iter_route_contexts

from hashgrid.server.auth import authenticate
from hashgrid.server.errors import DomainError, Forbidden, Unauthorized
from hashgrid.server.principal import ANONYMOUS, CallerRole, NodePrincipal, Principal

R = CallerRole

ANYONE = frozenset(R)
USERS = frozenset(
    {
        R.CUSTOMER_MEMBER,
        R.CUSTOMER_ADMIN,
        R.OPERATOR_MEMBER,
        R.OPERATOR_ADMIN,
        R.PLATFORM_ADMIN,
    }
)
ORG_ADMINS = frozenset({R.CUSTOMER_ADMIN, R.OPERATOR_ADMIN, R.PLATFORM_ADMIN})
CUSTOMERS = frozenset({R.CUSTOMER_MEMBER, R.CUSTOMER_ADMIN, R.PLATFORM_ADMIN})
CUSTOMER_ADMINS = frozenset({R.CUSTOMER_ADMIN, R.PLATFORM_ADMIN})
OPERATORS = frozenset({R.OPERATOR_MEMBER, R.OPERATOR_ADMIN, R.PLATFORM_ADMIN})
OPERATOR_ADMINS = frozenset({R.OPERATOR_ADMIN, R.PLATFORM_ADMIN})
PLATFORM = frozenset({R.PLATFORM_ADMIN})
NODES = frozenset({R.NODE})
GATEWAYS = frozenset({R.GATEWAY, R.PLATFORM_ADMIN})

API = "/api/v1"

RULES: dict[tuple[str, str], frozenset[CallerRole]] = {
    ("GET", "/healthz"): ANYONE,
    ("GET", "/metrics"): ANYONE,  # counts and timings, no names (see server/metrics.py)
    # accounts: sign-up, sign-in, the caller's own user and tokens
    ("POST", f"{API}/signup"): ANYONE,
    ("POST", f"{API}/login"): ANYONE,
    ("POST", f"{API}/session"): ANYONE,
    ("DELETE", f"{API}/session"): USERS,
    ("POST", f"{API}/invites/accept"): ANYONE,
    ("POST", f"{API}/invites"): PLATFORM,  # sign-up invites, when sign-up is by invitation
    ("GET", f"{API}/me"): USERS,
    ("GET", f"{API}/me/tokens"): USERS,
    ("POST", f"{API}/me/tokens"): USERS,
    ("DELETE", f"{API}/me/tokens/{{token_id}}"): USERS,
    # organizations, their members and invitations (a caller sees its own organizations)
    ("POST", f"{API}/organizations"): PLATFORM,
    ("GET", f"{API}/organizations"): USERS,
    ("GET", f"{API}/organizations/{{name}}"): USERS,
    ("PUT", f"{API}/organizations/{{name}}/limits"): PLATFORM,
    ("GET", f"{API}/organizations/{{name}}/members"): USERS,
    ("PUT", f"{API}/organizations/{{name}}/members/{{user_id}}"): ORG_ADMINS,
    ("DELETE", f"{API}/organizations/{{name}}/members/{{user_id}}"): ORG_ADMINS,
    ("POST", f"{API}/organizations/{{name}}/invites"): ORG_ADMINS,
    ("GET", f"{API}/audit"): ORG_ADMINS,
    # control-plane tokens: the admin's and the gateways'
    ("POST", f"{API}/tokens"): PLATFORM,
    # an operator's sites, their power and their nodes
    ("POST", f"{API}/sites"): OPERATOR_ADMINS,
    ("GET", f"{API}/sites"): OPERATORS,
    ("GET", f"{API}/sites/{{name}}"): OPERATORS,
    ("POST", f"{API}/sites/{{name}}/join-tokens"): OPERATOR_ADMINS,
    ("GET", f"{API}/sites/{{name}}/power"): OPERATORS,
    ("PUT", f"{API}/sites/{{name}}/power"): OPERATOR_ADMINS,
    ("POST", f"{API}/sites/{{name}}/curtailments"): OPERATOR_ADMINS,
    ("DELETE", f"{API}/sites/{{name}}/curtailments"): OPERATOR_ADMINS,
    ("GET", f"{API}/sites/{{name}}/power/plan"): OPERATORS,
    ("GET", f"{API}/sites/{{name}}/power/history"): OPERATORS,
    ("GET", f"{API}/nodes"): OPERATORS,
    ("GET", f"{API}/nodes/{{node}}"): OPERATORS,
    ("POST", f"{API}/nodes/{{node}}/cordon"): OPERATOR_ADMINS,
    ("POST", f"{API}/nodes/{{node}}/uncordon"): OPERATOR_ADMINS,
    ("POST", f"{API}/nodes/{{node}}/drain"): OPERATOR_ADMINS,
    ("POST", f"{API}/nodes/{{node}}/revoke"): OPERATOR_ADMINS,
    ("POST", f"{API}/nodes/{{node}}/verify"): OPERATOR_ADMINS,
    # the catalog (everyone signed in reads it) and deployments (a customer sees the public ones
    # and its own private ones)
    ("POST", f"{API}/models"): PLATFORM,
    ("GET", f"{API}/models"): USERS,
    ("GET", f"{API}/models/{{name}}"): USERS,
    # the price book: every signed-in user reads prices; a customer its own discounts
    ("GET", f"{API}/prices"): USERS,
    ("POST", f"{API}/prices"): PLATFORM,
    ("GET", f"{API}/discounts"): CUSTOMERS,
    ("POST", f"{API}/discounts"): PLATFORM,
    ("POST", f"{API}/deployments"): PLATFORM,
    ("GET", f"{API}/deployments"): CUSTOMERS,
    ("GET", f"{API}/deployments/{{name}}"): CUSTOMERS,
    ("PATCH", f"{API}/deployments/{{name}}"): PLATFORM,
    ("DELETE", f"{API}/deployments/{{name}}"): PLATFORM,
    ("GET", f"{API}/replicas"): PLATFORM,
    # a customer's keys and usage; an operator reads the usage its nodes served
    ("POST", f"{API}/keys"): CUSTOMER_ADMINS,
    ("GET", f"{API}/keys"): CUSTOMERS,
    ("PUT", f"{API}/keys/{{key_id}}/limits"): CUSTOMER_ADMINS,
    ("DELETE", f"{API}/keys/{{key_id}}"): CUSTOMER_ADMINS,
    ("GET", f"{API}/usage"): USERS,
    ("GET", f"{API}/usage/summary"): USERS,
    ("GET", f"{API}/usage/rejected"): PLATFORM,
    # compute contracts: the platform makes them for a customer, which reads its own
    ("POST", f"{API}/contracts"): PLATFORM,
    ("GET", f"{API}/contracts"): CUSTOMERS,
    ("GET", f"{API}/contracts/{{contract_id}}"): CUSTOMERS,
    ("POST", f"{API}/contracts/{{contract_id}}/cancel"): PLATFORM,
    # invoices (a customer reads its own; the platform issues them), operators' statements,
    # payouts, the ledger and operators' shares
    ("GET", f"{API}/invoices"): CUSTOMERS,
    ("POST", f"{API}/invoices"): PLATFORM,
    ("GET", f"{API}/invoices/draft"): CUSTOMERS,
    ("GET", f"{API}/invoices/{{number}}"): CUSTOMERS,
    ("GET", f"{API}/invoices/{{number}}/csv"): CUSTOMERS,
    ("GET", f"{API}/invoices/{{number}}/pdf"): CUSTOMERS,
    ("GET", f"{API}/invoices/{{number}}/recomputation"): CUSTOMERS,
    ("POST", f"{API}/invoices/{{number}}/pay"): PLATFORM,
    ("POST", f"{API}/invoices/{{number}}/void"): PLATFORM,
    ("GET", f"{API}/statements"): OPERATORS,
    ("GET", f"{API}/payouts"): PLATFORM,
    ("GET", f"{API}/ledger"): PLATFORM,
    ("PUT", f"{API}/organizations/{{name}}/share"): PLATFORM,
    # the agent protocol (join trades a one-time join token, sent in the body)
    ("POST", f"{API}/agent/join"): ANYONE,
    ("POST", f"{API}/agent/heartbeat"): NODES,
    ("POST", f"{API}/agent/rotate"): NODES,
    ("GET", f"{API}/agent/assignments"): NODES,
    ("PUT", f"{API}/agent/replicas/{{replica_id}}/state"): NODES,
    ("POST", f"{API}/agent/verification"): NODES,
    ("GET", f"{API}/agent/miners"): NODES,
    ("POST", f"{API}/agent/miners/results"): NODES,
    # the gateway feed
    ("GET", f"{API}/gateway/view"): GATEWAYS,
    ("POST", f"{API}/gateway/usage"): GATEWAYS,
    ("POST", f"{API}/gateway/demand"): GATEWAYS,
    ("POST", f"{API}/gateway/spot-checks"): GATEWAYS,
    ("POST", f"{API}/gateway/certificate"): GATEWAYS,  # a certificate for its listeners
    # the control plane's CA certificate: public, trusted only by its hash (common/tls.py)
    ("GET", f"{API}/ca"): ANYONE,
}


class NoRule(DomainError):
    status = 500
    title = "Internal error"


def rule_key(method: str, path: str) -> tuple[str, str]:
    """The key of a route in `RULES`: `{name:path}` is written `{name}` there."""
    return method, path.replace(":path}", "}")


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every API route of `app`, those of included routers too, as `authorize` sees them.

    Not `app.routes` alone: from FastAPI 0.165 it holds an included router as one entry, and
    the routes inside it are only reached through `iter_route_contexts`."""
    return [
        context.original_route
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
    ]


def routes_without_rule(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) of `app`'s API routes that `RULES` does not name."""
    return [
        rule_key(method, route.path)
        for route in api_routes(app)
        for method in sorted(route.methods or ())
        if rule_key(method, route.path) not in RULES
    ]


def check_every_route_has_a_rule(app: FastAPI) -> None:
    missing = routes_without_rule(app)
    if missing:
        raise RuntimeError(f"routes with no rule in server/policy.py: {missing}")


async def authorize(request: Request) -> Principal:
    """The caller, if the route's rule admits it; 401 or 403 otherwise."""
    route = request.scope.get("route")
    path = route.path if isinstance(route, APIRoute) else request.url.path
    admitted = RULES.get(rule_key(request.method, path))
    if admitted is None:
        raise NoRule(f"{request.method} {path} has no rule in the policy table")
    if admitted == ANYONE:
        try:
            principal = await authenticate(request)
        except (Unauthorized, Forbidden):  # a public route works whatever credential came along
            principal = ANONYMOUS
    else:
        principal = await authenticate(request)
    if principal.role not in admitted:
        if principal.role == CallerRole.ANONYMOUS:
            raise Unauthorized("this call needs a credential: a bearer token or a session")
        who = principal.role.value
        raise Forbidden(f"{who} credentials may not call {request.method} {rule_key('', path)[1]}")
    request.state.principal = principal
    return principal


Caller = Annotated[Principal, Depends(authorize)]


async def calling_node(caller: Caller) -> NodePrincipal:
    """The node a route admitting only nodes was called by."""
    assert caller.node_id is not None
    assert caller.credential_hash is not None
    return NodePrincipal(caller.node_id, caller.credential_hash)


CallingNode = Annotated[NodePrincipal, Depends(calling_node)]
