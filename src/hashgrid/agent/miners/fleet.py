"""A site's miners driven together: one action each, many at once, none waiting on another.

Curtailment has seconds, and a site has thousands of miners, some of which will not answer.
So each miner's work runs in its own task with its own deadline, at most `concurrency` at a
time; a miner past its deadline is reported failed and left behind (its task cancelled, never
awaited), so a hung API costs one slot for `timeout_s` and nothing more.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog

from hashgrid.agent.miners.driver import MinerAction, MinerDriver, MinerStatus, MinerTarget, apply
from hashgrid.agent.miners.errors import ActionRefused, MinerError, Unsupported

log = structlog.get_logger("hashgrid.agent.miners")

T = TypeVar("T")

# Finds and identifies the miner at an address (raises MinerError when none answers).
Connect = Callable[[str], Awaitable[MinerDriver]]


@dataclass(frozen=True)
class MinerResult:
    """What became of one target: `done` is what the miner now does, None if it failed."""

    target: MinerTarget
    done: MinerAction | None
    detail: str  # why it failed, or why `done` is a fallback; empty when done as asked
    seconds: float

    @property
    def ok(self) -> bool:
        return self.done is not None


@dataclass(frozen=True)
class StatusResult:
    """One miner's reading, or why there is none."""

    address: str
    status: MinerStatus | None
    error: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class _Outcome(Generic[T]):
    value: T | None
    error: str
    seconds: float


class Fleet:
    """The miners of one site, each found once through `connect` and its driver reused."""

    def __init__(self, connect: Connect, *, concurrency: int = 256, timeout_s: float = 5.0) -> None:
        self._connect = connect
        self._slots = asyncio.Semaphore(concurrency)
        self._timeout_s = timeout_s
        self._drivers: dict[str, MinerDriver] = {}
        self._abandoned: set[asyncio.Task[Any]] = set()

    async def apply(self, targets: Sequence[MinerTarget]) -> list[MinerResult]:
        """Do every target at once; one result per target, in the same order."""
        addresses = [t.address for t in targets]
        if len(set(addresses)) != len(addresses):
            raise ValueError("one target per miner: an address appears twice")

        async def one(target: MinerTarget) -> MinerResult:
            outcome = await self._bounded(target.address, lambda driver: apply(driver, target))
            if outcome.value is None:
                return MinerResult(target, None, outcome.error, outcome.seconds)
            return MinerResult(target, outcome.value.done, outcome.value.note, outcome.seconds)

        results = await asyncio.gather(*(one(t) for t in targets))
        failed = [r for r in results if not r.ok]
        if failed:
            log.warning(
                "miners failed their targets",
                failed=len(failed),
                of=len(results),
                first=f"{failed[0].target.address}: {failed[0].detail}",
            )
        return results

    async def statuses(self, addresses: Sequence[str]) -> list[StatusResult]:
        """Read every miner at once; one result per address, in the same order."""

        async def one(address: str) -> StatusResult:
            outcome = await self._bounded(address, lambda driver: driver.status())
            return StatusResult(address, outcome.value, outcome.error, outcome.seconds)

        return list(await asyncio.gather(*(one(a) for a in addresses)))

    async def _bounded(
        self, address: str, work: Callable[[MinerDriver], Awaitable[T]]
    ) -> _Outcome[T]:
        """`work` on the miner's driver (found first if need be), within the miner's deadline."""
        async with self._slots:
            started = time.monotonic()
            task = asyncio.create_task(self._with_driver(address, work))
            done, _ = await asyncio.wait([task], timeout=self._timeout_s)
            seconds = time.monotonic() - started
            if not done:
                # Cancelled, not awaited: a library that swallows the cancellation must not
                # hold this slot. The task is kept referenced until it ends.
                task.cancel()
                self._abandoned.add(task)
                task.add_done_callback(self._abandoned.discard)
                self._drivers.pop(address, None)
                return _Outcome(None, f"no answer within {self._timeout_s:g} s", seconds)
            try:
                return _Outcome(task.result(), "", seconds)
            except (Unsupported, ActionRefused) as e:
                return _Outcome(None, str(e), seconds)
            except Exception as e:
                # Unreachable, or a fault in the driver: find the miner afresh next time (it
                # may have rebooted into another firmware, or be another miner).
                self._drivers.pop(address, None)
                why = str(e) if isinstance(e, MinerError) else f"{type(e).__name__}: {e}"
                return _Outcome(None, why, seconds)

    async def _with_driver(self, address: str, work: Callable[[MinerDriver], Awaitable[T]]) -> T:
        driver = self._drivers.get(address)
        if driver is None:
            driver = await self._connect(address)
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # Past the deadline: pyasic's factory swallows a cancellation in places, and a
                # miner found too late must not be driven late.
                raise asyncio.CancelledError
            self._drivers[address] = driver
        return await work(driver)
