"""Why replicas of a deployment could not be placed: the first unmet need, in words an operator
acts on ("no ready node in regions us", "no node with 2 GPUs of 40960 MiB free each")."""

from hashgrid.scheduler.capacity import NodeState, Pool
from hashgrid.scheduler.snapshot import DeploymentView, PowerState, SiteView


class Reasons:
    """Figures about the whole fleet, gathered once per plan, and the reason for each deployment."""

    def __init__(
        self,
        sites: list[SiteView],
        nodes: list[NodeState],
        cooling: frozenset[tuple[str, str]],
    ) -> None:
        up = [n for n in nodes if n.site >= 0 and n.view.schedulable]
        ready = [n for n in up if n.view.admitted]
        uncordoned = [n for n in ready if not n.view.cordoned]
        self.any_up = bool(up)
        self.any_ready = bool(ready)
        self.any_uncordoned = bool(uncordoned)
        self.regions = {sites[n.site].region for n in uncordoned}
        self.active_regions = {
            sites[n.site].region
            for n in uncordoned
            if sites[n.site].power in (PowerState.ACTIVE, PowerState.FLEX_PAUSED)
        }
        self.by_id = {n.view.id: n for n in nodes}
        self.cooling = cooling

    def why(self, d: DeploymentView, pools: list[Pool]) -> str:
        """The reason replicas of `d` wait, given the pools that could run it memory aside."""
        if not self.any_ready:
            return (
                "no admitted node (awaiting or failed verification)"
                if self.any_up
                else ("no ready node")
            )
        if not self.any_uncordoned:
            return "every ready node is cordoned"
        if d.regions and not self.regions & d.regions:
            return f"no ready node in regions {', '.join(sorted(d.regions))}"
        if not (self.active_regions & d.regions if d.regions else self.active_regions):
            return "every site within reach is draining or curtailed"
        if not pools:
            return _hardware(d)
        eligible = sum(len(p.nodes) for p in pools)
        cooling = sum(
            1
            for d_id, n_id in self.cooling
            if d_id == d.id and (n := self.by_id.get(n_id)) is not None and n.pool in pools
        )
        if cooling >= eligible:
            return "replicas failed lately on every eligible node; waiting before retrying"
        mib = d.gpu_memory_bytes // 2**20
        if d.tensor_parallel_size > 1:
            return f"no node with {d.tensor_parallel_size} GPUs of {mib} MiB free each"
        return f"no node with {mib} MiB free"


def _hardware(d: DeploymentView) -> str:
    if d.cpu_ok:
        return "no node with usable memory (every GPU quarantined)"
    kind = f"{d.gpu_type} GPU" if d.gpu_type else "GPU"
    if d.tensor_parallel_size == 1:
        return f"no node with a usable {kind}"
    return f"no node with {d.tensor_parallel_size} usable {kind}s"
