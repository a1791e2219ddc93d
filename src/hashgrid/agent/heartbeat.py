"""Heartbeats: the control plane's only evidence that this node is alive."""

import asyncio
from collections.abc import Callable

import httpx
import structlog

from hashgrid.agent.control_plane import ControlPlane
from hashgrid.common.backoff import Backoff
from hashgrid.common.waiting import sleep_unless
from hashgrid.contracts.agent import Fingerprint

log = structlog.get_logger("hashgrid.agent.heartbeat")

# Send the full fingerprint every this many beats; the server writes it only when it changed.
FINGERPRINT_EVERY = 15


async def beat_until(
    stop: asyncio.Event,
    control_plane: ControlPlane,
    interval_s: float,
    collect: Callable[[], Fingerprint],
) -> None:
    """Beat every `interval_s` (the server may change it) until `stop`; back off while away.
    Every few beats carry a fresh fingerprint from `collect`."""
    backoff = Backoff(base=interval_s, cap=max(30.0, interval_s))
    beats = 0
    away = False
    while not stop.is_set():
        report = collect() if beats % FINGERPRINT_EVERY == 0 else None
        try:
            ack = await control_plane.heartbeat(report)
        except (httpx.HTTPError, OSError) as e:
            if not away:
                log.warning("control plane unreachable; engines keep serving", error=str(e))
            away = True
            await sleep_unless(stop, backoff.next_delay())
            continue
        if away:
            log.info("control plane reachable again")
        away = False
        backoff.reset()
        beats += 1
        interval_s = ack.heartbeat_interval_s
        await sleep_unless(stop, interval_s)
