"""GPU capacity per site, as the scheduler places it: the fleet's nodes and one deployment
asking for a replica on every `replica_gpus` GPUs go through `scheduler.plan`, and a site serves
with the nodes that got replicas. Placement runs once per run, not per hour: replicas stay put
while the power planner turns nodes on and off under them (as a site's power state does), so
hourly placement would only repeat the same answer.
"""

from collections import Counter

from hashgrid.scheduler import DeploymentView, GpuView, NodeView, SiteView, Snapshot, plan
from hashgrid.sim.model import Fleet

DEPLOYMENT = "sim-model"


def serving_nodes(fleet: Fleet) -> dict[str, int]:
    """GPU nodes holding at least one replica, per site (0 for a site with none)."""
    node = fleet.node
    gpus = tuple(
        GpuView(index=i, name=node.gpu_name, memory_bytes=node.gpu_memory_bytes)
        for i in range(node.gpus)
    )
    nodes = tuple(
        NodeView(id=f"{s.name}/{k}", site=s.name, memory_bytes=0, gpus=gpus)
        for s in fleet.sites
        for k in range(s.gpu_nodes)
    )
    # Each replica fills its GPUs (90% of memory: weights and KV cache), so one fits per slot.
    replica_memory = int(0.9 * node.gpu_memory_bytes) * node.replica_gpus
    deployment = DeploymentView(
        id=DEPLOYMENT,
        replicas=len(nodes) * node.replicas,
        memory_bytes=replica_memory,
        tensor_parallel_size=node.replica_gpus,
        gpu_only=True,
    )
    snapshot = Snapshot(
        sites=tuple(SiteView(id=s.name, region=s.country) for s in fleet.sites),
        nodes=nodes,
        deployments=(deployment,),
        replicas=(),
    )
    used = {p.node_id for p in plan(snapshot).places}
    per_site = Counter(node_id.rsplit("/", 1)[0] for node_id in used)
    return {s.name: per_site.get(s.name, 0) for s in fleet.sites}
