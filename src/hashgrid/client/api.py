"""`HashgridClient`: one method per REST call, returning the API's own schemas."""

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from hashgrid.contracts.api.access import TokenCreated
from hashgrid.contracts.api.catalog import ModelOut
from hashgrid.contracts.api.deployments import DeploymentOut
from hashgrid.contracts.api.keys import KeyCreated, KeyOut
from hashgrid.contracts.api.nodes import NodeOut
from hashgrid.contracts.api.organizations import OrganizationOut
from hashgrid.contracts.api.power import (
    CurtailmentOut,
    HistoryOut,
    PlanOut,
    SitePowerOut,
)
from hashgrid.contracts.api.sites import JoinTokenCreated, SiteOut
from hashgrid.contracts.api.usage import UsageOut

T = TypeVar("T", bound=BaseModel)


class ApiError(Exception):
    """The API answered with an error (its problem details)."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail


class HashgridClient:
    def __init__(self, server_url: str, token: str | None, timeout: float = 30.0) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=server_url.rstrip("/"), headers=headers, timeout=timeout)

    def __enter__(self) -> "HashgridClient":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, json: Any = None, **params: Any) -> Any:
        r = self._http.request(method, path, json=json, params=params or None)
        if r.status_code >= 400:
            try:
                body = r.json()
                raise ApiError(r.status_code, body.get("title", ""), body.get("detail", r.text))
            except ValueError:
                raise ApiError(r.status_code, r.reason_phrase, r.text) from None
        return r.json() if r.content else None

    def _one(self, model: type[T], method: str, path: str, json: Any = None) -> T:
        return model.model_validate(self._call(method, path, json))

    def _many(self, model: type[T], path: str, **params: Any) -> list[T]:
        return TypeAdapter(list[model]).validate_python(self._call("GET", path, **params))  # type: ignore[valid-type]

    def healthy(self) -> bool:
        try:
            return self._http.get("/healthz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    # organizations
    def create_organization(self, name: str, kind: str) -> OrganizationOut:
        body = {"name": name, "kind": kind}
        return self._one(OrganizationOut, "POST", "/api/v1/organizations", body)

    def get_organization(self, name: str) -> OrganizationOut:
        return self._one(OrganizationOut, "GET", f"/api/v1/organizations/{name}")

    def list_organizations(self) -> list[OrganizationOut]:
        return self._many(OrganizationOut, "/api/v1/organizations")

    def set_organization_limits(
        self,
        name: str,
        rpm: int | None = None,
        tpm: int | None = None,
        monthly_budget_usd: float | None = None,
    ) -> OrganizationOut:
        """Replace a customer's limits (None: no limit of that kind)."""
        body = _limits(rpm, tpm, monthly_budget_usd)
        return self._one(OrganizationOut, "PUT", f"/api/v1/organizations/{name}/limits", body)

    # access tokens
    def create_token(self, name: str, role: str) -> TokenCreated:
        return self._one(TokenCreated, "POST", "/api/v1/tokens", {"name": name, "role": role})

    # sites
    def create_site(
        self, name: str, region: str, country: str, power_mw: float, operator: str | None = None
    ) -> SiteOut:
        body = {
            "name": name,
            "region": region,
            "country": country,
            "power_mw": power_mw,
            "operator": operator,
        }
        return self._one(SiteOut, "POST", "/api/v1/sites", body)

    def get_site(self, name: str) -> SiteOut:
        return self._one(SiteOut, "GET", f"/api/v1/sites/{name}")

    def list_sites(self) -> list[SiteOut]:
        return self._many(SiteOut, "/api/v1/sites")

    def create_join_token(self, site: str, ttl_s: int = 86400) -> JoinTokenCreated:
        path = f"/api/v1/sites/{site}/join-tokens"
        return self._one(JoinTokenCreated, "POST", path, {"ttl_s": ttl_s})

    # power
    def get_power(self, site: str) -> SitePowerOut:
        return self._one(SitePowerOut, "GET", f"/api/v1/sites/{site}/power")

    def set_power(self, site: str, model: dict[str, Any]) -> SitePowerOut:
        return self._one(SitePowerOut, "PUT", f"/api/v1/sites/{site}/power", model)

    def curtail(
        self,
        site: str,
        target_mw: float,
        reason: str = "",
        source: str = "operator",
        by: str | None = None,
    ) -> CurtailmentOut:
        body = {"target_mw": target_mw, "reason": reason, "source": source, "by": by}
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

    def drain(self, node: str, deadline_s: float = 60.0) -> NodeOut:
        path = f"/api/v1/nodes/{node}/drain"
        return self._one(NodeOut, "POST", path, {"deadline_s": deadline_s})

    # catalog
    def add_model(
        self,
        name: str,
        source: str,
        size_bytes: int,
        context_length: int = 2048,
        price_per_mtok_prompt: float = 0.0,
        price_per_mtok_completion: float = 0.0,
        task: str = "generate",
        sha256: str | None = None,
    ) -> ModelOut:
        body = {
            "name": name,
            "source": source,
            "size_bytes": size_bytes,
            "context_length": context_length,
            "price_per_mtok_prompt": price_per_mtok_prompt,
            "price_per_mtok_completion": price_per_mtok_completion,
            "task": task,
            "sha256": sha256,
        }
        return self._one(ModelOut, "POST", "/api/v1/models", body)

    def set_model_prices(self, name: str, prompt: float, completion: float) -> ModelOut:
        """USD per million prompt and completion tokens."""
        body = {"price_per_mtok_prompt": prompt, "price_per_mtok_completion": completion}
        return self._one(ModelOut, "PUT", f"/api/v1/models/{name}/prices", body)

    def get_model(self, name: str) -> ModelOut:
        return self._one(ModelOut, "GET", f"/api/v1/models/{name}")

    def list_models(self) -> list[ModelOut]:
        return self._many(ModelOut, "/api/v1/models")

    # deployments
    def deploy(
        self,
        model: str,
        name: str | None = None,
        replicas: int | None = None,
        regions: list[str] | None = None,
        tier: str = "flex",
        engine: str | None = None,
        tensor_parallel_size: int = 1,
        gpu_type: str | None = None,
        min_replicas: int | None = None,
        max_replicas: int | None = None,
        **targets: float | None,
    ) -> DeploymentOut:
        """Deploy `model`: `replicas` alone fixes the size (default 1); `min_replicas` and
        `max_replicas` autoscale, with `targets` (target_load, ttft_target_ms, idle_s)."""
        body = {
            "model": model,
            "name": name,
            "replicas": replicas,
            "min_replicas": min_replicas,
            "max_replicas": max_replicas,
            **{k: v for k, v in targets.items() if v is not None},
            "regions": regions or [],
            "tier": tier,
            "engine": engine,
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_type": gpu_type,
        }
        return self._one(DeploymentOut, "POST", "/api/v1/deployments", body)

    def deploy_endpoint(
        self, name: str, endpoint: str, site: str | None = None, task: str | None = None
    ) -> DeploymentOut:
        """Serve `name` from `endpoint`, an OpenAI-compatible server run outside hashgrid, routed
        as part of `site` (default: the only site); `task` generate (default) or embed."""
        body = {"name": name, "endpoint": endpoint, "site": site, "task": task}
        return self._one(DeploymentOut, "POST", "/api/v1/deployments", body)

    def get_deployment(self, name: str) -> DeploymentOut:
        return self._one(DeploymentOut, "GET", f"/api/v1/deployments/{name}")

    def list_deployments(self) -> list[DeploymentOut]:
        return self._many(DeploymentOut, "/api/v1/deployments")

    def scale(
        self, name: str, replicas: int | None = None, **bounds: float | None
    ) -> DeploymentOut:
        """Resize `name`: `replicas` alone fixes the size; `bounds` (min_replicas,
        max_replicas, target_load, ttft_target_ms, idle_s) autoscale it."""
        return self.change_deployment(name, replicas=replicas, **bounds)

    def change_deployment(self, name: str, **fields: object) -> DeploymentOut:
        """Change `name`'s fields given (not None): size, targets, or what replicas run
        (model, engine, tensor_parallel_size, gpu_type, regions: rolled out), or tier."""
        given = {k: v for k, v in fields.items() if v is not None}
        return self._one(DeploymentOut, "PATCH", f"/api/v1/deployments/{name}", given)

    def delete_deployment(self, name: str) -> None:
        self._call("DELETE", f"/api/v1/deployments/{name}")

    # keys
    def create_key(
        self,
        customer: str,
        name: str = "default",
        rpm: int | None = None,
        tpm: int | None = None,
        monthly_budget_usd: float | None = None,
    ) -> KeyCreated:
        """A new key for `customer`, with limits where given (None: no limit of that kind)."""
        body = {"customer": customer, "name": name, "limits": _limits(rpm, tpm, monthly_budget_usd)}
        return self._one(KeyCreated, "POST", "/api/v1/keys", body)

    def list_keys(self) -> list[KeyOut]:
        return self._many(KeyOut, "/api/v1/keys")

    def set_key_limits(
        self,
        key_id: str,
        rpm: int | None = None,
        tpm: int | None = None,
        monthly_budget_usd: float | None = None,
    ) -> KeyOut:
        """Replace a key's limits (None: no limit of that kind)."""
        body = _limits(rpm, tpm, monthly_budget_usd)
        return self._one(KeyOut, "PUT", f"/api/v1/keys/{key_id}/limits", body)

    def revoke_key(self, key_id: str) -> None:
        self._call("DELETE", f"/api/v1/keys/{key_id}")

    # usage
    def usage(self, limit: int = 100) -> list[UsageOut]:
        return self._many(UsageOut, "/api/v1/usage", limit=limit)


def _limits(rpm: int | None, tpm: int | None, monthly_budget_usd: float | None) -> dict[str, Any]:
    return {"rpm": rpm, "tpm": tpm, "monthly_budget_usd": monthly_budget_usd}
