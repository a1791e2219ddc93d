"""The seam between a site agent and its ASIC miners: what it asks of one, what it reads back.

A target is level-triggered, as the control plane will send it: "this miner asleep", "this
miner hashing", "this miner hashing at no more than W watts". A driver does it, or the nearest
thing its firmware can do without going over the target, and says which (`Applied`).
"""

from dataclasses import dataclass
from typing import Protocol

# The control plane sends the same actions (contracts/agent.py: `MinerOrder`).
from hashgrid.contracts.states import MinerAction as MinerAction


@dataclass(frozen=True)
class MinerTarget:
    """What one miner should be doing: `address` is the miner's IP address on the site."""

    address: str
    action: MinerAction
    watts: int | None = None  # for POWER only

    def __post_init__(self) -> None:
        if self.action is MinerAction.POWER:
            if self.watts is None or self.watts < 0:
                raise ValueError(f"a power target needs watts >= 0, not {self.watts}")
        elif self.watts is not None:
            raise ValueError(f"{self.action} takes no watts")


@dataclass(frozen=True)
class MinerStatus:
    """One reading of a miner. Figures the firmware does not report are None."""

    # Whether it is producing hashes: the firmware's own mining flag where the driver reads one,
    # else a hashrate above zero (so a miner still warming up after a wake reads as not hashing).
    hashing: bool
    hashrate_ths: float | None
    power_w: int | None
    power_limit_w: int | None
    errors: tuple[str, ...] = ()
    model: str | None = None
    firmware: str | None = None


@dataclass(frozen=True)
class Capabilities:
    """What a miner's firmware can do, as far as its driver knows before trying."""

    power_target: bool  # takes a power limit in watts
    sleep: bool  # stops and resumes hashing on command


@dataclass(frozen=True)
class Applied:
    """What a driver did: the action asked, or the fallback it chose (`note` says why)."""

    done: MinerAction
    note: str = ""


class MinerDriver(Protocol):
    """One miner. Methods raise `MinerError` subclasses (`agent.miners.errors`) on failure."""

    @property
    def address(self) -> str: ...

    @property
    def capabilities(self) -> Capabilities: ...

    async def status(self) -> MinerStatus:
        """Read hashrate, power, power limit, errors and whether it hashes."""
        ...

    async def sleep(self) -> Applied:
        """Stop hashing (curtail): the miner stays reachable and draws its idle power."""
        ...

    async def resume(self) -> Applied:
        """Hash again, at the power limit the miner had."""
        ...

    async def set_power_target(self, watts: int) -> Applied:
        """Hash drawing at most `watts`; where the firmware cannot, sleep rather than go over."""
        ...


async def apply(driver: MinerDriver, target: MinerTarget) -> Applied:
    """Do `target` with `driver`, which must be the driver of `target.address`."""
    if target.action is MinerAction.SLEEP:
        return await driver.sleep()
    if target.action is MinerAction.RESUME:
        return await driver.resume()
    assert target.watts is not None  # checked when the target was made
    return await driver.set_power_target(target.watts)
