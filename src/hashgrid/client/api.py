"""`HashgridClient`: one method per REST call. It sends the request shapes of `contracts/api`
(built, and so validated, by the caller) and returns the response shapes: the same classes the
server validates and answers with, without importing the server."""

import ssl
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from hashgrid.contracts.api.access import TokenCreate, TokenCreated
from hashgrid.contracts.api.accounts import (
    InviteAccept,
    InviteCreate,
    InviteCreated,
    Me,
    MemberOut,
    PersonalTokenCreated,
    PersonalTokenOut,
    RoleChange,
    SignedIn,
    SignIn,
    SignUp,
    SignupInviteCreate,
)
from hashgrid.contracts.api.accounts import TokenCreate as PersonalTokenCreate
from hashgrid.contracts.api.audit import AuditEntryOut
from hashgrid.contracts.api.billing import (
    InvoiceDetail,
    InvoiceIssue,
    InvoiceOut,
    LedgerOut,
    Recomputation,
    ShareOut,
    ShareSet,
    StatementOut,
)
from hashgrid.contracts.api.catalog import ModelCreate, ModelOut
from hashgrid.contracts.api.common import Limits
from hashgrid.contracts.api.compute_contracts import ContractCreate, ContractDetail, ContractOut
from hashgrid.contracts.api.deployments import DeploymentChange, DeploymentCreate, DeploymentOut
from hashgrid.contracts.api.keys import KeyCreate, KeyCreated, KeyOut
from hashgrid.contracts.api.nodes import DrainRequest, NodeOut
from hashgrid.contracts.api.organizations import OrganizationCreate, OrganizationOut
from hashgrid.contracts.api.power import (
    CurtailmentCreate,
    CurtailmentOut,
    HistoryOut,
    PlanOut,
    PowerModel,
    SitePowerOut,
)
from hashgrid.contracts.api.prices import DiscountCreate, DiscountOut, PriceCreate, PriceOut
from hashgrid.contracts.api.sites import JoinTokenCreate, JoinTokenCreated, SiteCreate, SiteOut
from hashgrid.contracts.api.usage import UsageOut, UsageSummaryQuery, UsageSummaryRow
from hashgrid.contracts.states import InvoiceStatus

T = TypeVar("T", bound=BaseModel)

NEXT_CURSOR = "x-next-cursor"  # a list's answer: where its next page begins (server/pages.py)


class ApiError(Exception):
    """The API answered with an error (its problem details)."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail


class HashgridClient:
    def __init__(
        self,
        server_url: str,
        token: str | None,
        timeout: float = 30.0,
        page_size: int = 1000,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """`page_size`: the items a list call asks for at once (1,000: the most a list answers);
        list methods follow the pages to the end whatever it is. `verify`: what an https
        control plane is verified by (its CA's context: common/tls.py)."""
        self._page_size = page_size
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=server_url.rstrip("/"), headers=headers, timeout=timeout, verify=verify
        )

    def __enter__(self) -> "HashgridClient":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, json: Any = None, **params: Any) -> httpx.Response:
        r = self._http.request(method, path, json=json, params=params or None)
        if r.status_code >= 400:
            try:
                body = r.json()
                raise ApiError(r.status_code, body.get("title", ""), body.get("detail", r.text))
            except ValueError:
                raise ApiError(r.status_code, r.reason_phrase, r.text) from None
        return r

    def _call(self, method: str, path: str, json: Any = None, **params: Any) -> Any:
        r = self._send(method, path, json, **params)
        return r.json() if r.content else None

    def _one(self, model: type[T], method: str, path: str, body: BaseModel | None = None) -> T:
        return model.model_validate(self._call(method, path, _wire(body)))

    def _many(self, shape: type[T], path: str, most: int | None = None, **params: Any) -> list[T]:
        """Every item a list answers (`most` at most), page after page: each page's
        `x-next-cursor` asks for the next."""
        pages = TypeAdapter(list[shape])  # type: ignore[valid-type]
        items: list[T] = []
        while most is None or len(items) < most:
            limit = self._page_size if most is None else min(self._page_size, most - len(items))
            r = self._send("GET", path, **params, limit=limit)
            items.extend(pages.validate_python(r.json()))
            cursor = r.headers.get(NEXT_CURSOR)
            if not cursor:
                break
            params["cursor"] = cursor
        return items

    def healthy(self) -> bool:
        try:
            return self._http.get("/healthz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    # accounts: sign-up and sign-in (no credential needed), the caller's own user and tokens
    def sign_up(self, body: SignUp) -> SignedIn:
        """A new organization and its first admin; answers that admin's personal token."""
        return self._one(SignedIn, "POST", "/api/v1/signup", body)

    def log_in(self, body: SignIn) -> SignedIn:
        """An email and password traded for a personal token in one of the user's organizations."""
        return self._one(SignedIn, "POST", "/api/v1/login", body)

    def me(self) -> Me:
        return self._one(Me, "GET", "/api/v1/me")

    def create_personal_token(self, body: PersonalTokenCreate) -> PersonalTokenCreated:
        return self._one(PersonalTokenCreated, "POST", "/api/v1/me/tokens", body)

    def list_personal_tokens(self) -> list[PersonalTokenOut]:
        return self._many(PersonalTokenOut, "/api/v1/me/tokens")

    def revoke_personal_token(self, token_id: str) -> None:
        self._call("DELETE", f"/api/v1/me/tokens/{token_id}")

    # members and invitations
    def members(self, organization: str) -> list[MemberOut]:
        return self._many(MemberOut, f"/api/v1/organizations/{organization}/members")

    def set_member_role(self, organization: str, user_id: str, body: RoleChange) -> MemberOut:
        path = f"/api/v1/organizations/{organization}/members/{user_id}"
        return self._one(MemberOut, "PUT", path, body)

    def remove_member(self, organization: str, user_id: str) -> None:
        self._call("DELETE", f"/api/v1/organizations/{organization}/members/{user_id}")

    def create_invite(self, organization: str, body: InviteCreate) -> InviteCreated:
        """A one-time code to join `organization` with a role."""
        path = f"/api/v1/organizations/{organization}/invites"
        return self._one(InviteCreated, "POST", path, body)

    def create_signup_invite(self, body: SignupInviteCreate) -> InviteCreated:
        """A one-time code for a new organization to sign up (invite-only sign-up)."""
        return self._one(InviteCreated, "POST", "/api/v1/invites", body)

    def accept_invite(self, body: InviteAccept) -> SignedIn:
        return self._one(SignedIn, "POST", "/api/v1/invites/accept", body)

    # the audit log
    def audit(self, limit: int = 100) -> list[AuditEntryOut]:
        """The newest changes made through the API that the caller may read."""
        return self._many(AuditEntryOut, "/api/v1/audit", most=limit)

    # organizations
    def create_organization(self, body: OrganizationCreate) -> OrganizationOut:
        return self._one(OrganizationOut, "POST", "/api/v1/organizations", body)

    def get_organization(self, name: str) -> OrganizationOut:
        return self._one(OrganizationOut, "GET", f"/api/v1/organizations/{name}")

    def list_organizations(self) -> list[OrganizationOut]:
        return self._many(OrganizationOut, "/api/v1/organizations")

    def set_organization_limits(self, name: str, limits: Limits) -> OrganizationOut:
        """Replace a customer's limits (None: no limit of that kind)."""
        path = f"/api/v1/organizations/{name}/limits"
        return self._one(OrganizationOut, "PUT", path, limits)

    # access tokens
    def create_token(self, body: TokenCreate) -> TokenCreated:
        return self._one(TokenCreated, "POST", "/api/v1/tokens", body)

    # sites
    def create_site(self, body: SiteCreate) -> SiteOut:
        return self._one(SiteOut, "POST", "/api/v1/sites", body)

    def get_site(self, name: str) -> SiteOut:
        return self._one(SiteOut, "GET", f"/api/v1/sites/{name}")

    def list_sites(self) -> list[SiteOut]:
        return self._many(SiteOut, "/api/v1/sites")

    def create_join_token(self, site: str, body: JoinTokenCreate | None = None) -> JoinTokenCreated:
        path = f"/api/v1/sites/{site}/join-tokens"
        return self._one(JoinTokenCreated, "POST", path, body or JoinTokenCreate())

    # power
    def get_power(self, site: str) -> SitePowerOut:
        return self._one(SitePowerOut, "GET", f"/api/v1/sites/{site}/power")

    def set_power(self, site: str, model: PowerModel) -> SitePowerOut:
        return self._one(SitePowerOut, "PUT", f"/api/v1/sites/{site}/power", model)

    def curtail(self, site: str, body: CurtailmentCreate) -> CurtailmentOut:
        return self._one(CurtailmentOut, "POST", f"/api/v1/sites/{site}/curtailments", body)

    def restore(self, site: str) -> CurtailmentOut:
        return self._one(CurtailmentOut, "DELETE", f"/api/v1/sites/{site}/curtailments")

    def power_plan(self, site: str, hours: int = 24, start: str | None = None) -> PlanOut:
        params: dict[str, Any] = {"hours": hours} | ({"start": start} if start else {})
        path = f"/api/v1/sites/{site}/power/plan"
        return PlanOut.model_validate(self._call("GET", path, **params))

    def power_history(self, site: str, limit: int = 100) -> HistoryOut:
        path = f"/api/v1/sites/{site}/power/history"
        return HistoryOut.model_validate(self._call("GET", path, limit=limit))

    # nodes
    def list_nodes(self) -> list[NodeOut]:
        return self._many(NodeOut, "/api/v1/nodes")

    def get_node(self, node: str) -> NodeOut:
        return self._one(NodeOut, "GET", f"/api/v1/nodes/{node}")

    def cordon(self, node: str) -> NodeOut:
        return self._one(NodeOut, "POST", f"/api/v1/nodes/{node}/cordon")

    def uncordon(self, node: str) -> NodeOut:
        return self._one(NodeOut, "POST", f"/api/v1/nodes/{node}/uncordon")

    def verify_node(self, node: str) -> NodeOut:
        """Send the node back to pending; its agent benchmarks again at its next heartbeat."""
        return self._one(NodeOut, "POST", f"/api/v1/nodes/{node}/verify")

    def drain(self, node: str, body: DrainRequest | None = None) -> NodeOut:
        path = f"/api/v1/nodes/{node}/drain"
        return self._one(NodeOut, "POST", path, body or DrainRequest())

    # the price book and discounts
    def add_prices(self, body: PriceCreate) -> list[PriceOut]:
        """A model's prices from a moment on: one entry per tier it names (both when none)."""
        return TypeAdapter(list[PriceOut]).validate_python(
            self._call("POST", "/api/v1/prices", _wire(body))
        )

    def list_prices(self, model: str | None = None) -> list[PriceOut]:
        if model is None:
            return self._many(PriceOut, "/api/v1/prices")
        return self._many(PriceOut, "/api/v1/prices", model=model)

    def add_discount(self, body: DiscountCreate) -> DiscountOut:
        return self._one(DiscountOut, "POST", "/api/v1/discounts", body)

    def list_discounts(self) -> list[DiscountOut]:
        return self._many(DiscountOut, "/api/v1/discounts")

    # catalog
    def add_model(self, body: ModelCreate) -> ModelOut:
        return self._one(ModelOut, "POST", "/api/v1/models", body)

    def get_model(self, name: str) -> ModelOut:
        return self._one(ModelOut, "GET", f"/api/v1/models/{name}")

    def list_models(self) -> list[ModelOut]:
        return self._many(ModelOut, "/api/v1/models")

    # deployments
    def deploy(self, body: DeploymentCreate) -> DeploymentOut:
        """Deploy a catalog model (placed on nodes), or an endpoint run outside hashgrid."""
        return self._one(DeploymentOut, "POST", "/api/v1/deployments", body)

    def get_deployment(self, name: str) -> DeploymentOut:
        return self._one(DeploymentOut, "GET", f"/api/v1/deployments/{name}")

    def list_deployments(self) -> list[DeploymentOut]:
        return self._many(DeploymentOut, "/api/v1/deployments")

    def change_deployment(self, name: str, body: DeploymentChange) -> DeploymentOut:
        """Change the fields of `name` that `body` sets: size, targets, tier, or what replicas
        run (rolled out)."""
        return self._one(DeploymentOut, "PATCH", f"/api/v1/deployments/{name}", body)

    def delete_deployment(self, name: str) -> None:
        self._call("DELETE", f"/api/v1/deployments/{name}")

    # keys
    def create_key(self, body: KeyCreate) -> KeyCreated:
        return self._one(KeyCreated, "POST", "/api/v1/keys", body)

    def list_keys(self) -> list[KeyOut]:
        return self._many(KeyOut, "/api/v1/keys")

    def set_key_limits(self, key_id: str, limits: Limits) -> KeyOut:
        """Replace a key's limits (None: no limit of that kind)."""
        return self._one(KeyOut, "PUT", f"/api/v1/keys/{key_id}/limits", limits)

    def revoke_key(self, key_id: str) -> None:
        self._call("DELETE", f"/api/v1/keys/{key_id}")

    # usage
    def usage(self, limit: int = 100) -> list[UsageOut]:
        return self._many(UsageOut, "/api/v1/usage", most=limit)

    def usage_summary(self, asked: UsageSummaryQuery) -> list[UsageSummaryRow]:
        """The caller's usage summed by `asked.group_by` over its window."""
        params = asked.model_dump(mode="json", exclude_none=True)
        rows = self._call("GET", "/api/v1/usage/summary", **params)
        return TypeAdapter(list[UsageSummaryRow]).validate_python(rows)

    # compute contracts
    def create_contract(self, body: ContractCreate) -> ContractOut:
        """Reserve replicas of a deployment for a customer (the platform admin)."""
        return self._one(ContractOut, "POST", "/api/v1/contracts", body)

    def list_contracts(self) -> list[ContractOut]:
        return self._many(ContractOut, "/api/v1/contracts")

    def get_contract(self, contract_id: str) -> ContractDetail:
        """A contract with its replicas ready now and this month's hours."""
        return self._one(ContractDetail, "GET", f"/api/v1/contracts/{contract_id}")

    def cancel_contract(self, contract_id: str) -> ContractOut:
        return self._one(ContractOut, "POST", f"/api/v1/contracts/{contract_id}/cancel")

    # invoices, statements, payouts, the ledger
    def list_invoices(
        self,
        period: str | None = None,
        customer: str | None = None,
        status: InvoiceStatus | None = None,
    ) -> list[InvoiceOut]:
        """The issued invoices the caller sees, newest first."""
        return self._many(
            InvoiceOut,
            "/api/v1/invoices",
            **_given(period=period, customer=customer, status=status),
        )

    def draft_invoice(
        self, customer: str | None = None, period: str | None = None
    ) -> InvoiceDetail:
        """A customer's invoice of a period as it would be issued now (default: yours, this
        month)."""
        found = self._call(
            "GET", "/api/v1/invoices/draft", **_given(customer=customer, period=period)
        )
        return InvoiceDetail.model_validate(found)

    def get_invoice(self, number: str) -> InvoiceDetail:
        return self._one(InvoiceDetail, "GET", f"/api/v1/invoices/{number}")

    def invoice_file(self, number: str, kind: str) -> bytes:
        """The invoice as a document: `kind` is "csv" or "pdf"."""
        return self._send("GET", f"/api/v1/invoices/{number}/{kind}").content

    def recompute_invoice(self, number: str) -> Recomputation:
        return self._one(Recomputation, "GET", f"/api/v1/invoices/{number}/recomputation")

    def issue_invoice(self, body: InvoiceIssue) -> InvoiceDetail:
        return self._one(InvoiceDetail, "POST", "/api/v1/invoices", body)

    def pay_invoice(self, number: str) -> InvoiceOut:
        return self._one(InvoiceOut, "POST", f"/api/v1/invoices/{number}/pay")

    def void_invoice(self, number: str) -> InvoiceOut:
        return self._one(InvoiceOut, "POST", f"/api/v1/invoices/{number}/void")

    def statements(
        self, period: str | None = None, operator: str | None = None
    ) -> list[StatementOut]:
        found = self._call("GET", "/api/v1/statements", **_given(period=period, operator=operator))
        return TypeAdapter(list[StatementOut]).validate_python(found)

    def payouts_csv(self, period: str | None = None) -> str:
        return self._send("GET", "/api/v1/payouts", **_given(period=period)).text

    def ledger(self, period: str | None = None) -> LedgerOut:
        return LedgerOut.model_validate(
            self._call("GET", "/api/v1/ledger", **_given(period=period))
        )

    def set_operator_share(self, operator: str, body: ShareSet) -> ShareOut:
        return self._one(ShareOut, "PUT", f"/api/v1/organizations/{operator}/share", body)


def _given(**params: Any) -> dict[str, Any]:
    """The query parameters given: one that is None is left out, so the server's default holds."""
    return {name: value for name, value in params.items() if value is not None}


def _wire(body: BaseModel | None) -> Any:
    """A request shape as JSON: only the fields its maker set, so the server's defaults, and a
    change's "left out: stays as it is", apply as if the client had written the JSON itself."""
    return None if body is None else body.model_dump(mode="json", exclude_unset=True)
