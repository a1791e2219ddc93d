"""Miners through pyasic: every firmware pyasic identifies, with what each one can do.

pyasic gives every miner class the same methods (`get_data`, `set_power_limit`, `stop_mining`,
`resume_mining`), but a firmware that cannot do one inherits a base that does nothing and
returns False. What a miner can do is read from its class: whether it implements the method
itself, and whether its model says it cannot shut down (pyasic marks a few, e.g. KS5, L7).
In pyasic 0.79, power limits are taken by Braiins OS, LuxOS (its highest profile at or under
the target), VNish, Whatsminer, Auradine, Avalon and Marathon firmware; stock Antminer, ePIC,
Hiveon and Goldshell firmware can only sleep and resume; the rest can do neither.

Import this module only on a site with miners: pyasic adds about 33 MB to an agent's memory.
"""

import logging
from typing import Any

from hashgrid.agent.miners.driver import Applied, Capabilities, MinerAction, MinerStatus
from hashgrid.agent.miners.errors import ActionRefused, MinerUnreachable, Unsupported

# pyasic calls logging.basicConfig() and sets the root logger to WARNING on import, which would
# silence the agent's standard-library loggers below that; the root level is put back after.
_ROOT_LEVEL = logging.getLogger().level
from pyasic import get_miner  # noqa: E402
from pyasic.miners.backends.unknown import UnknownMiner  # noqa: E402
from pyasic.miners.base import MinerProtocol  # noqa: E402
from pyasic.miners.data import DataOptions  # noqa: E402

logging.getLogger().setLevel(_ROOT_LEVEL)

# What a status needs; pyasic reads only the commands these need (one multicommand on LuxOS).
_STATUS_DATA = [
    DataOptions.HASHRATE,
    DataOptions.HASHBOARDS,
    DataOptions.WATTAGE,
    DataOptions.WATTAGE_LIMIT,
    DataOptions.ERRORS,
    DataOptions.IS_MINING,
]


async def connect(address: str) -> "PyasicDriver":
    """The driver of the miner at `address`, as pyasic's factory identifies it.

    The factory probes the address's RPC port (4028) and web ports (80, 443) at once.
    """
    try:
        miner = await get_miner(address)
    except Exception as e:
        raise MinerUnreachable(f"identifying {address}: {type(e).__name__}: {e}") from e
    if miner is None or isinstance(miner, UnknownMiner):
        raise MinerUnreachable(f"no miner that pyasic knows answered at {address}")
    return PyasicDriver(miner)


class PyasicDriver:
    """One miner through its pyasic class (`miner`, as `pyasic.get_miner` returns it)."""

    def __init__(self, miner: Any) -> None:
        self._miner = miner
        self._capabilities = Capabilities(
            power_target=_implements(miner, "set_power_limit"),
            sleep=_implements(miner, "stop_mining")
            and _implements(miner, "resume_mining")
            and _declared(miner, "supports_shutdown") is not False,
        )
        locations = miner.data_locations
        # Firmwares without a mining flag leave pyasic's default (True) in every reading.
        self._reports_mining = locations is not None and _implements(miner, locations.is_mining.cmd)
        # The power this miner drew when last seen hashing: what waking an on/off miner costs.
        self._hashing_w: int | None = None

    @property
    def address(self) -> str:
        return str(self._miner.ip)

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def _name(self) -> str:
        return f"{self._miner.model} at {self.address}"

    async def status(self) -> MinerStatus:
        try:
            data = await self._miner.get_data(include=_STATUS_DATA)
        except Exception as e:
            raise MinerUnreachable(f"{self._name}: reading status: {e}") from e
        hashrate = _terahashes(data.hashrate)
        power = None if data.wattage is None else int(data.wattage)
        if hashrate is None and power is None:
            # pyasic turns a refused or empty answer into missing figures, not an error.
            raise MinerUnreachable(f"{self._name} reported neither hashrate nor power")
        hashing = bool(data.is_mining) if self._reports_mining else (hashrate or 0.0) > 0
        if hashing and power is not None and not self._capabilities.power_target:
            self._hashing_w = power
        limit = data.wattage_limit
        return MinerStatus(
            hashing=hashing,
            hashrate_ths=hashrate,
            power_w=power,
            power_limit_w=None if limit is None else int(limit),
            errors=tuple(_error_text(e) for e in data.errors),
            model=None if data.model is None else str(data.model),
            firmware=None if data.firmware is None else str(data.firmware),
        )

    async def sleep(self) -> Applied:
        return await self._switch("stop_mining", MinerAction.SLEEP)

    async def resume(self) -> Applied:
        return await self._switch("resume_mining", MinerAction.RESUME)

    async def _switch(self, method: str, action: MinerAction) -> Applied:
        if not self._capabilities.sleep:
            raise Unsupported(f"{self._name} cannot sleep or resume")
        if why := await self._attempt(method):
            raise ActionRefused(f"{self._name}: {why}")
        return Applied(action)

    async def set_power_target(self, watts: int) -> Applied:
        if watts <= 0:
            return await self._sleep_instead("a 0 W target")
        if not self._capabilities.power_target:
            return await self._on_off(watts)
        if why := await self._attempt("set_power_limit", watts):
            return await self._sleep_instead(f"it took no {watts} W limit ({why})")
        await self._wake_if_asleep()
        return Applied(MinerAction.POWER)

    async def _wake_if_asleep(self) -> None:
        """A power target means hashing at that power: a sleeping miner is woken."""
        if not self._capabilities.sleep or (await self.status()).hashing:
            return
        if why := await self._attempt("resume_mining"):
            raise ActionRefused(f"{self._name}: limit set, but it did not wake: {why}")

    async def _on_off(self, watts: int) -> Applied:
        """A power target for a firmware that can only hash at full power or sleep."""
        reason = f"{self._miner.firmware} on {self._miner.model} takes no power limit"
        status = await self.status()
        if status.hashing:
            if status.power_w is not None and status.power_w <= watts:
                return Applied(MinerAction.RESUME, f"{reason}; its {status.power_w} W is within")
            drawn = "an unknown power" if status.power_w is None else f"{status.power_w} W"
            return await self._sleep_instead(f"{reason}, and hashing it draws {drawn}")
        if self._hashing_w is not None and self._hashing_w <= watts:
            await self.resume()
            return Applied(MinerAction.RESUME, f"{reason}; woken: it drew {self._hashing_w} W")
        return Applied(
            MinerAction.SLEEP,
            f"{reason}, and what it draws hashing is not known: left asleep (resume wakes it)",
        )

    async def _sleep_instead(self, reason: str) -> Applied:
        if not self._capabilities.sleep:
            raise Unsupported(f"{self._name}: {reason}, and it cannot sleep")
        if why := await self._attempt("stop_mining"):
            raise ActionRefused(f"{self._name}: {reason}, and sleeping failed: {why}")
        return Applied(MinerAction.SLEEP, f"{reason}: slept instead")

    async def _attempt(self, method: str, *args: int) -> str:
        """Call a pyasic action: empty if it succeeded, else why not.

        Firmwares keep state between commands (LuxOS a session id, web firmwares a login token)
        that the miner may have dropped since (an expiry, a reboot), and pyasic never renews it:
        a failed action is tried once more through a fresh instance of the miner's class.
        """
        why = await self._call(method, *args)
        if why:
            self._miner = type(self._miner)(self._miner.ip)
            why = await self._call(method, *args)
        return why

    async def _call(self, method: str, *args: int) -> str:
        try:
            done = await getattr(self._miner, method)(*args)
        except Exception as e:
            return f"{method} failed: {type(e).__name__}: {e}"
        return "" if done else f"{method} was refused"


def _implements(miner: Any, method: str) -> bool:
    """Whether the miner's class does `method` itself, not pyasic's base that does nothing."""
    if isinstance(miner, UnknownMiner):
        return False
    return getattr(type(miner), method, None) is not getattr(MinerProtocol, method, None)


def _declared(miner: Any, flag: str) -> object:
    """A `supports_*` flag as the miner's classes set it; None where only pyasic's default."""
    for cls in type(miner).__mro__:
        if cls is MinerProtocol:
            return None
        if flag in vars(cls):
            return vars(cls)[flag]
    return None


def _terahashes(rate: Any) -> float | None:
    if rate is None:
        return None
    return float(rate.into(rate.unit.TH))


def _error_text(error: Any) -> str:
    message = getattr(error, "error_message", None)
    return str(message) if message else f"error code {getattr(error, 'error_code', '?')}"
