"""Which standby nodes placement wakes: those the scheduler would put the pending replicas on,
were they up, and no other."""

from hashgrid.scheduler import DeploymentView, PowerState, Snapshot
from hashgrid.server.power.standby import wanted_awake

from support.scheduler import GIB, L4, dep, gpu, site, snap


def _snapshot(big: DeploymentView, power: PowerState = PowerState.ACTIVE) -> Snapshot:
    nodes = (
        gpu("up", count=1, memory=24 * GIB, name=L4),  # too small for the 40 GiB model
        gpu("h100-asleep", schedulable=False),
        gpu("l4-asleep", count=1, memory=24 * GIB, name=L4, schedulable=False),
    )
    return snap(nodes, [big], sites=[site(power=power)])


def test_the_node_that_fits_the_pending_replica_is_woken() -> None:
    big = dep("big", memory=40 * GIB, replicas=1)
    asleep = ["h100-asleep", "l4-asleep"]
    assert wanted_awake(_snapshot(big), asleep, ["big"]) == {"h100-asleep"}


def test_nothing_is_woken_for_deployments_not_pending() -> None:
    big = dep("big", memory=40 * GIB, replicas=1)
    assert wanted_awake(_snapshot(big), ["h100-asleep", "l4-asleep"], []) == set()
    assert wanted_awake(_snapshot(big), [], ["big"]) == set()


def test_no_node_is_woken_at_a_site_that_may_not_take_the_work() -> None:
    big = dep("big", memory=40 * GIB, replicas=1)
    curtailed = _snapshot(big, power=PowerState.DRAINING)
    assert wanted_awake(curtailed, ["h100-asleep", "l4-asleep"], ["big"]) == set()
