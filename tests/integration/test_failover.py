"""Failover: a node dies under steady load and no client request fails (issue 5's end-to-end
check). Three real agents with real llama.cpp engines, one control plane, one gateway, the
`openai` client with its own retries off."""

import time
from pathlib import Path

import openai

from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.sites import SiteCreate

from support.engines import engines_of
from support.live import LiveFleet, wait_until
from support.load import Load


def test_a_node_killed_under_load_fails_no_request_and_its_replica_serves_elsewhere(
    tiny_model: Path, tmp_path: Path
) -> None:
    with LiveFleet(tmp_path) as fleet:
        admin = fleet.admin
        admin.create_site(SiteCreate(name="local", region="us-south", country="US", power_mw=1.0))
        admin.create_organization(OrganizationCreate(name="acme", kind="customer"))
        key = admin.create_key(KeyCreate(customer="acme")).key
        agents = [fleet.add_agent("local", f"n{i}") for i in range(3)]
        fleet.wait_for_nodes(3)
        admin.add_model(
            ModelCreate(name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size)
        )
        admin.deploy(DeploymentCreate(model="tiny", replicas=2))
        gateway = fleet.start_gateway()
        routed = gateway
        wait_until(lambda: routed.ready_replicas("tiny") == 2, 90, "two routable replicas")
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
        names = {n.id: n.name for n in admin.list_nodes()}

        with Load(client) as load:
            wait_until(lambda: load.answered >= 20, 30, "steady load")
            serving = {r.node_id for r in admin.get_deployment("tiny").replica_list}
            victim_id = sorted(serving)[0]
            victim = agents[int(names[victim_id][1:])]
            engines = engines_of(victim.home)
            assert engines, "the victim's engine"
            killed = time.monotonic()
            victim.kill()
            for engine in engines:
                engine.kill()  # the whole node is gone, its engine with it

            def replaced() -> bool:
                replicas = admin.get_deployment("tiny").replica_list
                ready = [r for r in replicas if r.status == "ready" and r.node_id != victim_id]
                return len(ready) == 2

            wait_until(replaced, 30, "capacity back to two ready replicas")
            back_s = time.monotonic() - killed
            routed = gateway
            wait_until(
                lambda: routed.ready_replicas("tiny") == 2, 30, "the gateway routing to both"
            )
            answered_during = load.answered
            wait_until(lambda: load.answered >= answered_during + 10, 30, "load after recovery")
        print(
            f"failover: capacity back to 2 ready replicas {back_s:.1f} s after SIGKILL "
            f"(node TTL 3 s); {load.answered} requests answered, {len(load.failures)} failed"
        )
        assert load.failures == [], load.failures[:5]
