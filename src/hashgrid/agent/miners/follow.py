"""A site agent's loop over its site's ASIC miners and GPU nodes' BMCs: long-poll the orders,
apply them (miners with the `Fleet`, node power with `Redfish`), report each one's result.

Orders are level-triggered; an answer equal to the last one applied in full is not applied
again (every poll that any change ends would otherwise touch thousands of miners), but after
any failure the next answer is applied whole, so a miner that was away catches up.
"""

import asyncio

import structlog

from hashgrid.agent.bmc import BmcError, Redfish
from hashgrid.agent.control_plane import AWAY_RETRY_CAP_S, ControlPlane, Unreachable
from hashgrid.agent.miners.driver import MinerTarget
from hashgrid.agent.miners.fleet import Fleet
from hashgrid.common.backoff import Backoff
from hashgrid.common.waiting import sleep_unless
from hashgrid.contracts.agent import (
    MinerOrder,
    MinerOutcome,
    MinerResults,
    NodePowerOrder,
    NodePowerOutcome,
)

log = structlog.get_logger("hashgrid.agent.miners")


async def follow_orders(
    stop: asyncio.Event,
    control_plane: ControlPlane,
    fleet: Fleet,
    redfish: Redfish,
    long_poll_s: float,
) -> None:
    """Until `stop`: apply each new answer's orders and report what became of them."""
    revision = 0
    applied: tuple[list[MinerOrder], list[NodePowerOrder]] | None = None
    backoff = Backoff(cap=AWAY_RETRY_CAP_S)
    while not stop.is_set():
        try:
            answer = await control_plane.miner_orders(revision, long_poll_s)
        except Unreachable:
            await sleep_unless(stop, backoff.next_delay())
            continue
        backoff.reset()
        revision = answer.revision
        if stop.is_set() or (answer.orders, answer.nodes) == applied:
            continue
        results, nodes = await asyncio.gather(
            fleet.apply([MinerTarget(o.address, o.action, o.watts) for o in answer.orders]),
            asyncio.gather(*(_power(redfish, order) for order in answer.nodes)),
        )
        failed = sum(not r.ok for r in results) + sum(n.on is None for n in nodes)
        log.info(
            "orders applied",
            reason=answer.reason,
            miners=len(results),
            nodes=len(nodes),
            failed=failed,
        )
        applied = None if failed else (answer.orders, answer.nodes)
        report = MinerResults(
            revision=revision,
            results=[
                MinerOutcome(address=r.target.address, done=r.done, detail=r.detail[:2000])
                for r in results
            ],
            nodes=list(nodes),
        )
        try:
            await control_plane.report_miners(report)
        except Unreachable as e:
            log.warning("miner results not delivered", error=str(e))


async def _power(redfish: Redfish, order: NodePowerOrder) -> NodePowerOutcome:
    try:
        await redfish.set_power(order.bmc, order.on)
    except BmcError as e:
        return NodePowerOutcome(node=order.node, on=None, detail=str(e)[:2000])
    return NodePowerOutcome(node=order.node, on=order.on)
