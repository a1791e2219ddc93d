"""Runs each reconciler in its own loop, so one that fails never stops the others."""

import asyncio
from typing import Protocol

import structlog

from hashgrid.server.changes import Changes

log = structlog.get_logger("hashgrid.server.reconcile")


class Reconciler(Protocol):
    name: str

    async def reconcile(self) -> None:
        """One level-triggered pass: look at the whole state, act on the difference."""


async def run_forever(reconciler: Reconciler, changes: Changes, interval_s: float) -> None:
    """Pass after every change and at least every `interval_s`, until cancelled."""
    seen = 0
    while True:
        seen = await changes.wait_newer(seen, interval_s)
        try:
            await reconciler.reconcile()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "reconciler failed; retrying on the next pass", reconciler=reconciler.name
            )
            await asyncio.sleep(interval_s)


def start_all(
    reconcilers: list[tuple[Reconciler, float]], changes: Changes
) -> list[asyncio.Task[None]]:
    """Start each reconciler with its own longest pause between passes."""
    return [
        asyncio.create_task(run_forever(r, changes, interval_s), name=f"reconcile-{r.name}")
        for r, interval_s in reconcilers
    ]
