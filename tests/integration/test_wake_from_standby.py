"""A GPU node powered off while idle and woken for work, with real processes: a site agent
(`hashgrid agent --miners`) powers the idle node off through its BMC (a fake Redfish BMC whose
power is the node's agent process), a new deployment wakes it, its agent comes back with its
stored credential, starts llama.cpp, and the `openai` client is served through the gateway."""

import signal
import time
from pathlib import Path

import openai

from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.nodes import NodeOut
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.power import PowerModel
from hashgrid.contracts.api.sites import SiteCreate
from hashgrid.gateway.steering import SITE_HEADER

from support.fake_bmc import FakeBmc
from support.live import AgentProcess, LiveFleet, wait_until

BMC_ENV = {"HASHGRID_AGENT_BMC_USERNAME": "admin", "HASHGRID_AGENT_BMC_PASSWORD": "secret"}


def test_a_deployment_wakes_a_powered_off_node_and_is_served_from_it(
    tiny_model: Path, tmp_path: Path
) -> None:
    with LiveFleet(tmp_path, node_standby_after_s=2.0) as fleet:
        admin = fleet.admin
        gpu: list[AgentProcess] = []

        def power(on: bool) -> None:
            """The node's machine: its agent runs while powered; a graceful shutdown stops it
            as the OS would (SIGTERM: engines stop, then the agent)."""
            if on:
                gpu.append(fleet.restart_agent("tx-gpu"))
            else:
                gpu[-1].proc.send_signal(signal.SIGTERM)

        with FakeBmc(username="admin", password="secret", on_power=power) as bmc:
            admin.create_site(SiteCreate(name="tx", region="us-south", country="US", power_mw=1.0))
            admin.set_power(
                "tx",
                PowerModel.model_validate(
                    {
                        "gpus": {"bmcs": {"tx-gpu": bmc.system_url}},
                        "price": {"kind": "fixed", "usd_per_mwh": 30.0},
                        "hashprice": {"kind": "constant", "usd_per_ph_day": 50.0},
                    }
                ),
            )
            admin.create_organization(OrganizationCreate(name="acme", kind="customer"))
            key = admin.create_key(KeyCreate(customer="acme")).key
            admin.add_model(
                ModelCreate(
                    name="tiny", source=str(tiny_model), size_bytes=tiny_model.stat().st_size
                )
            )

            fleet.add_agent("tx", "tx-site", extra_args=["--miners"], env=BMC_ENV)
            fleet.wait_for_nodes(1)
            (site_node,) = admin.list_nodes()
            admin.cordon(site_node.id)  # the site agent's machine serves no replica here
            gpu.append(fleet.add_agent("tx", "tx-gpu"))
            fleet.wait_for_nodes(2)

            def node() -> NodeOut:
                (found,) = [n for n in admin.list_nodes() if n.name == "tx-gpu"]
                return found

            wait_until(lambda: not bmc.powered, 60, "the idle node powered off")
            assert bmc.resets == ["GracefulShutdown"]
            assert gpu[0].proc.wait(30) == 0  # its agent shut down cleanly
            wait_until(lambda: node().status == "lost", 30, "the node lost")

            gateway = fleet.start_gateway()
            deployed_at = time.monotonic()
            admin.deploy(DeploymentCreate(model="tiny", replicas=1))
            wait_until(lambda: bmc.powered, 30, "the node woken")
            woken_s = time.monotonic() - deployed_at
            assert bmc.resets == ["GracefulShutdown", "On"]
            wait_until(lambda: gateway.ready_replicas("tiny") == 1, 120, "a routable replica")
            client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
            raw = client.chat.completions.with_raw_response.create(
                model="tiny", messages=[{"role": "user", "content": "awake?"}], max_tokens=4
            )
            serving_s = time.monotonic() - deployed_at
            assert raw.headers[SITE_HEADER] == "tx"
            assert raw.parse().choices[0].message.content is not None
            assert node().power == "on"
            (replica,) = admin.get_deployment("tiny").replica_list
            assert replica.node_id == node().id
            print(
                f"wake from standby: BMC told to power on {woken_s:.1f} s after the deploy, "
                f"first answer {serving_s:.1f} s after it"
            )
