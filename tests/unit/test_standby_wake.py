"""Which standby nodes placement wakes: those the scheduler would put the pending replicas on,
were they up, and no other; and when an idle node goes to standby, its BMC's refusals in a row
doubling the wait."""

from datetime import UTC, datetime, timedelta

from hashgrid.scheduler import DeploymentView, PowerState, Snapshot
from hashgrid.server.power.standby import MAX_DOUBLINGS, standby_due, wanted_awake

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


def test_each_refusal_in_a_row_doubles_the_wait_before_standby() -> None:
    idle_since, wait = datetime(2026, 11, 21, 12, tzinfo=UTC), timedelta(minutes=15)
    assert standby_due(idle_since, wait, 0) == idle_since + wait
    assert standby_due(idle_since, wait, 1) == idle_since + 2 * wait
    assert standby_due(idle_since, wait, 3) == idle_since + 8 * wait
    most = idle_since + timedelta(hours=16)  # 2**6 times 15 minutes
    assert standby_due(idle_since, wait, MAX_DOUBLINGS) == most
    assert standby_due(idle_since, wait, MAX_DOUBLINGS + 5) == most
