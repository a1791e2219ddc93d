"""A rolling change under load: a deployment switched to another model is rolled over a replica at
a time on real agents and llama.cpp engines, and no client request fails meanwhile."""

from pathlib import Path

import openai

from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentChange, DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.sites import SiteCreate
from hashgrid.contracts.states import ReplicaStatus

from support.live import LiveFleet, wait_until
from support.load import Load


def test_a_new_model_rolls_out_under_load_with_no_failed_request(
    tiny_model: Path, tmp_path: Path
) -> None:
    with LiveFleet(tmp_path) as fleet:
        admin, server = fleet.admin, fleet.server
        admin.create_site(SiteCreate(name="local", region="us-south", country="US", power_mw=1.0))
        admin.create_organization(OrganizationCreate(name="acme", kind="customer"))
        key = admin.create_key(KeyCreate(customer="acme")).key
        for i in range(3):
            fleet.add_agent("local", f"n{i}")
        fleet.wait_for_nodes(3)
        admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        admin.add_model(
            ModelCreate(
                name="tiny-v2", source=str(tiny_model), size_bytes=tiny_model.stat().st_size
            )
        )
        admin.deploy(DeploymentCreate(model="tiny", replicas=2))
        gateway = fleet.start_gateway()
        routed = gateway
        wait_until(lambda: routed.ready_replicas("tiny") == 2, 90, "two routable replicas")
        old = {r.id for r in admin.get_deployment("tiny").replica_list}
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)

        with Load(client) as load:
            wait_until(lambda: load.answered >= 20, 30, "steady load")
            changed = admin.change_deployment("tiny", DeploymentChange(model="tiny-v2"))
            assert (changed.generation, changed.model) == (1, "tiny-v2")

            def rolled() -> bool:
                replicas = admin.get_deployment("tiny").replica_list
                return (
                    len(replicas) == 2
                    and all(r.generation == 1 for r in replicas)
                    and all(r.status == ReplicaStatus.READY for r in replicas)
                )

            wait_until(rolled, 120, "both replicas on generation 1")
            wait_until(lambda: routed.ready_replicas("tiny") == 2, 30, "routing to both")
            answered = load.answered
            wait_until(lambda: load.answered >= answered + 10, 30, "load after the roll")
        print(f"rolling: {load.answered} requests answered, {len(load.failures)} failed")
        assert load.failures == [], load.failures[:5]

        deployment = admin.get_deployment("tiny")
        assert not old & {r.id for r in deployment.replica_list}, "every old replica replaced"
        messages = [e.message for e in deployment.events]
        assert "rolling out generation 1: model tiny -> tiny-v2" in messages
        assert sum("removed: replaced by generation 1" in m for m in messages) == 2
        with server.http() as http:

            def stopped() -> set[str]:
                params = {"deployment": "tiny", "status": "stopped"}
                return {r["id"] for r in http.get("/api/v1/replicas", params=params).json()}

            wait_until(lambda: stopped() == old, 30, "the old engines stopped by their agents")
