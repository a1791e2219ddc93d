"""Heartbeats: the control plane's only evidence that this node is alive. Each also carries the
load of every ready engine, and the store's holdings when they changed."""

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from hashgrid.agent.control_plane import ControlPlane, Unreachable
from hashgrid.agent.holdings import HoldingsReport
from hashgrid.agent.verification import VerifyRequests
from hashgrid.common.backoff import Backoff
from hashgrid.common.waiting import sleep_unless
from hashgrid.contracts.agent import Fingerprint, Heartbeat, HeartbeatAck, ReplicaLoad

log = structlog.get_logger("hashgrid.agent.heartbeat")

# Send the full fingerprint every this many beats; the server writes it only when it changed.
FINGERPRINT_EVERY = 15

# While the control plane is away, beats are retried at most this fraction of its node TTL
# apart. A control plane that comes back gives each node one TTL to beat before declaring it
# lost; a longer retry delay (it was 30 s against an 8 s TTL) had every node lost, and every
# replica replaced, after each restart. The rest of the TTL leaves room for the call itself.
RETRY_TTL_FRACTION = 0.25


def retry_cap(interval_s: float, node_ttl_s: float | None) -> float:
    """The longest wait between beats retried while the control plane is away: a fraction of
    its node TTL, or the beat interval (always well inside any TTL) until it has told it."""
    if node_ttl_s is None:
        return interval_s
    return max(interval_s, node_ttl_s * RETRY_TTL_FRACTION)


async def beat_until(
    stop: asyncio.Event,
    control_plane: ControlPlane,
    interval_s: float,
    collect: Callable[[], Fingerprint],
    *,
    loads: Callable[[], Awaitable[list[ReplicaLoad]]] | None = None,
    holdings: HoldingsReport | None = None,
    acknowledged: Callable[[HeartbeatAck], None] | None = None,
    verify_requests: VerifyRequests | None = None,
) -> None:
    """Beat every `interval_s` (the server may change it) until `stop`; back off while away.
    Every few beats carry a fresh fingerprint from `collect`; every beat the engines' `loads`;
    and the store's `holdings` when it says so. Each answer goes to `acknowledged`; one that
    asks for a verification, to `verify_requests`."""
    backoff = Backoff(base=interval_s, cap=retry_cap(interval_s, None))
    beats = 0
    away = False
    while not stop.is_set():
        with_fingerprint = beats % FINGERPRINT_EVERY == 0
        body = Heartbeat(
            fingerprint=collect() if with_fingerprint else None,
            replicas=await loads() if loads is not None else [],
            holdings=holdings.for_beat(with_fingerprint) if holdings is not None else None,
        )
        sent_at = time.monotonic()
        try:
            # A connection attempt to a host that drops packets (one rebooting) is retried
            # within the same bound as a refused one.
            ack = await control_plane.heartbeat(body, connect_s=backoff.cap)
        except Unreachable as e:
            if not away:
                log.warning("control plane unreachable; engines keep serving", error=str(e))
            away = True
            await sleep_unless(stop, backoff.next_delay())
            continue
        if away:
            log.info("control plane reachable again")
        away = False
        backoff.reset()
        if holdings is not None:
            holdings.acknowledged(body.holdings)
        if acknowledged is not None:
            acknowledged(ack)
        beats += 1
        if ack.verify and verify_requests is not None:
            verify_requests.asked(sent_at)
        interval_s = ack.heartbeat_interval_s
        backoff.base, backoff.cap = interval_s, retry_cap(interval_s, ack.node_ttl_s)
        await sleep_unless(stop, interval_s)
