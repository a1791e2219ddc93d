"""Runs each reconciler in its own loop, so one that fails never stops the others."""

import asyncio
from typing import Protocol

import structlog

from hashgrid.server.changes import Changes

log = structlog.get_logger("hashgrid.server.reconcile")


class Reconciler(Protocol):
    name: str

    async def reconcile(self) -> float | None:
        """One level-triggered pass: look at the whole state, act on the difference. It may
        return the seconds after which something it awaits is due (a pass sooner than its
        interval)."""


async def run_forever(reconciler: Reconciler, changes: Changes, interval_s: float) -> None:
    """Pass after every change and at least every `interval_s` (sooner when the last pass said
    something is due), until cancelled."""
    seen = 0
    wait_s = interval_s
    while True:
        seen = await changes.wait_newer(seen, wait_s)
        try:
            due_s = await reconciler.reconcile()
            wait_s = interval_s if due_s is None else min(interval_s, due_s)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "reconciler failed; retrying on the next pass", reconciler=reconciler.name
            )
            wait_s = interval_s
            await asyncio.sleep(interval_s)


def start_all(
    reconcilers: list[tuple[Reconciler, float]], changes: Changes
) -> list[asyncio.Task[None]]:
    """Start each reconciler with its own longest pause between passes."""
    return [
        asyncio.create_task(run_forever(r, changes, interval_s), name=f"reconcile-{r.name}")
        for r, interval_s in reconcilers
    ]
