"""A site agent's loop over its site's ASIC miners: long-poll the orders, apply them with the
`Fleet`, report each miner's result.

Orders are level-triggered; an answer equal to the last one applied in full is not applied
again (every poll that any change ends would otherwise touch thousands of miners), but after
any failure the next answer is applied whole, so a miner that was away catches up.
"""

import asyncio

import structlog

from hashgrid.agent.control_plane import ControlPlane, Unreachable
from hashgrid.agent.miners.driver import MinerTarget
from hashgrid.agent.miners.fleet import Fleet
from hashgrid.common.backoff import Backoff
from hashgrid.common.waiting import sleep_unless
from hashgrid.contracts.agent import MinerOrder, MinerOutcome, MinerResults

log = structlog.get_logger("hashgrid.agent.miners")


async def follow_orders(
    stop: asyncio.Event, control_plane: ControlPlane, fleet: Fleet, long_poll_s: float
) -> None:
    """Until `stop`: apply each new answer's orders and report what became of them."""
    revision = 0
    applied: list[MinerOrder] | None = None
    backoff = Backoff()
    while not stop.is_set():
        try:
            answer = await control_plane.miner_orders(revision, long_poll_s)
        except Unreachable:
            await sleep_unless(stop, backoff.next_delay())
            continue
        backoff.reset()
        revision = answer.revision
        if stop.is_set() or answer.orders == applied:
            continue
        results = await fleet.apply(
            [MinerTarget(o.address, o.action, o.watts) for o in answer.orders]
        )
        log.info(
            "miner orders applied",
            reason=answer.reason,
            miners=len(results),
            failed=sum(not r.ok for r in results),
        )
        applied = answer.orders if all(r.ok for r in results) else None
        report = MinerResults(
            revision=revision,
            results=[
                MinerOutcome(address=r.target.address, done=r.done, detail=r.detail[:2000])
                for r in results
            ],
        )
        try:
            await control_plane.report_miners(report)
        except Unreachable as e:
            log.warning("miner results not delivered", error=str(e))
