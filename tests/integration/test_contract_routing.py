"""A compute contract end to end: two real agents with real llama.cpp engines, a real gateway
and control plane, the `openai` client with its own retries off. Acme holds one replica of
`tiny` by contract; the deployment has one on-demand replica; Globex saturates the model with
concurrent requests. Acme's requests are all served, all on its reserved replica (as its usage
records say), although its prompt's affinity prefers the other replica."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import openai

from hashgrid.billing.contracts import hour_of
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.compute_contracts import ContractCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.sites import SiteCreate
from hashgrid.routing import affinity_key, prompt_prefix
from hashgrid.routing.affinity import rendezvous_weight

from support.live import LiveFleet, wait_until
from support.load import Load

HOLDER_REQUESTS = 20


def prompt_preferring(replica: str, other: str) -> list[dict[str, str]]:
    """Chat messages whose prefix rendezvous hashing sends to `replica` rather than `other`:
    without the contract, affinity would take the holder's requests there."""
    for n in range(1000):
        messages = [{"role": "user", "content": f"acme question {n}"}]
        key = affinity_key(prompt_prefix({"messages": messages}))
        if rendezvous_weight(key, replica) > rendezvous_weight(key, other):
            return messages
    raise AssertionError("no prompt prefers the replica")


def test_the_holder_is_served_on_its_replica_while_on_demand_load_saturates_the_model(
    tiny_model: Path, tmp_path: Path
) -> None:
    with LiveFleet(tmp_path, contract_sample_s=0.5) as fleet:
        admin = fleet.admin
        admin.create_site(SiteCreate(name="local", region="us-south", country="US", power_mw=1.0))
        keys = {}
        for customer in ("acme", "globex"):
            admin.create_organization(OrganizationCreate(name=customer, kind="customer"))
            keys[customer] = admin.create_key(KeyCreate(customer=customer)).key
        for i in range(2):
            fleet.add_agent("local", f"n{i}")
        fleet.wait_for_nodes(2)
        admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        admin.deploy(DeploymentCreate(model="tiny", replicas=1))
        now = hour_of(datetime.now(UTC))
        contract = admin.create_contract(
            ContractCreate(
                customer="acme",
                model="tiny",
                replicas=1,
                price_per_replica_hour=Decimal("2"),
                starts_at=now,
                ends_at=now + timedelta(hours=2),
            )
        )
        assert contract.status == "active"
        gateway = fleet.start_gateway()
        # The reserved replica's readiness brings the view that names its holder.
        wait_until(lambda: gateway.ready_replicas("tiny") == 2, 120, "both replicas routable")
        replicas = admin.get_deployment("tiny").replica_list
        [reserved] = [r.id for r in replicas if r.contract_id == contract.id]
        [on_demand] = [r.id for r in replicas if r.contract_id is None]
        messages = prompt_preferring(on_demand, reserved)

        def client(customer: str) -> openai.OpenAI:
            url = f"{gateway.url}/v1"
            return openai.OpenAI(base_url=url, api_key=keys[customer], max_retries=0)

        acme = client("acme")
        with Load(client("globex"), threads=6) as globex:
            wait_until(lambda: globex.answered >= 30, 60, "the on-demand load")
            for _ in range(HOLDER_REQUESTS):
                answer = acme.chat.completions.create(
                    model="tiny",
                    messages=messages,
                    max_tokens=4,  # type: ignore[arg-type]
                )
                assert answer.choices
            served_during = globex.answered
            wait_until(lambda: globex.answered > served_during + 10, 60, "load still served")
        assert globex.failures == [], globex.failures[:3]

        def records() -> list[str | None]:
            acme_id = admin.get_organization("acme").id
            found = [r for r in admin.usage(1000) if r.customer_id == acme_id]
            return [r.replica_id for r in found] if len(found) == HOLDER_REQUESTS else []

        served_on = wait_until(records, 30, "the holder's usage records")
        assert served_on == [reserved] * HOLDER_REQUESTS
        shown = admin.get_contract(contract.id)
        assert shown.replicas_ready == 1
