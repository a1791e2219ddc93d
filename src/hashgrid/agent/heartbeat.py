"""Heartbeats: the control plane's only evidence that this node is alive. Each also carries the
load of every ready engine, and the store's holdings when they changed."""

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from hashgrid.agent.control_plane import ControlPlane, Unreachable
from hashgrid.agent.holdings import HoldingsReport
from hashgrid.common.backoff import Backoff
from hashgrid.common.waiting import sleep_unless
from hashgrid.contracts.agent import Fingerprint, Heartbeat, ReplicaLoad

log = structlog.get_logger("hashgrid.agent.heartbeat")

# Send the full fingerprint every this many beats; the server writes it only when it changed.
FINGERPRINT_EVERY = 15


async def beat_until(
    stop: asyncio.Event,
    control_plane: ControlPlane,
    interval_s: float,
    collect: Callable[[], Fingerprint],
    *,
    loads: Callable[[], Awaitable[list[ReplicaLoad]]] | None = None,
    holdings: HoldingsReport | None = None,
) -> None:
    """Beat every `interval_s` (the server may change it) until `stop`; back off while away.
    Every few beats carry a fresh fingerprint from `collect`; every beat the engines' `loads`;
    and the store's `holdings` when it says so."""
    backoff = Backoff(base=interval_s, cap=max(30.0, interval_s))
    beats = 0
    away = False
    while not stop.is_set():
        with_fingerprint = beats % FINGERPRINT_EVERY == 0
        body = Heartbeat(
            fingerprint=collect() if with_fingerprint else None,
            replicas=await loads() if loads is not None else [],
            holdings=holdings.for_beat(with_fingerprint) if holdings is not None else None,
        )
        try:
            ack = await control_plane.heartbeat(body)
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
        beats += 1
        interval_s = ack.heartbeat_interval_s
        await sleep_unless(stop, interval_s)
