"""A fake LuxOS miner: the firmware's RPC API (cgminer-style JSON over TCP 4028), with state.

LuxOS is the family whose whole control surface pyasic reaches over one plaintext protocol:
detection (`version`/`devdetails` on 4028), status (`summary`, `stats`, `power`, `config`,
`profiles`, as one `a+b+c` multicommand), and writes (`logon`/`session`, then `curtail`,
`profileset`, `atmset` with the session id as first parameter). The other families need HTTP on
port 80 (stock Antminer, VNish, ePIC), TLS or gRPC (Braiins OS), or encrypted commands
(Whatsminer). Command names and the shapes of the answers are those pyasic's LuxOS parsers read
(`pyasic/miners/backends/luxminer.py`, `pyasic/config/mining/`) and Luxor's own tooling expects
(`STATUS` list, `id`, answers ended by a NUL byte, `Code` 402 for a second logon).

pyasic's factory probes a miner on fixed ports of its address (TCP 4028; HTTP 80 and 443, which
may be refused) and has no setting to change them, so each fake listens on port 4028 of its own
random address in 127.0.0.0/8 (Linux routes the whole block to loopback). The address, not the
port, is what is unique: fakes of parallel tests do not collide, and pyasic's own
`get_miner(address)` identifies and drives a fake unchanged.

The state is what a test asserts on: `hashing`, `profile`, `watts`, `hashrate_ths`, and the
commands received. Hashrate and power follow the active profile; a sleeping miner hashes
nothing and draws `idle_watts`. Sessions expire after `session_ttl_s` without use, as the
firmware's do, so a client holding a stale session id is refused.
"""

import asyncio
import json
import random
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

RPC_PORT = 4028  # where pyasic looks for every cgminer-style API; it cannot be told otherwise
FIRMWARE = "2024.5.1.155453-f7a2ad8f"
API_VERSION = "3.7"

Answer = dict[str, Any]


@dataclass(frozen=True)
class Profile:
    """A LuxOS power profile: a frequency step with the hashrate and watts it gives."""

    name: str
    frequency_mhz: int
    voltage: float
    watts: int
    hashrate_ths: float


def s21_profiles() -> tuple[Profile, ...]:
    """An Antminer S21's profiles: 200 TH/s at 3,500 W (17.5 J/TH) at the default 490 MHz.

    Hashrate follows the frequency; power rises a little faster (voltage rises with it), so
    lower profiles are more efficient, as on the real machine.
    """
    profiles = []
    for mhz in (190, 265, 340, 415, 490, 565):
        ratio = mhz / 490
        name = "default" if mhz == 490 else f"{mhz}MHz"
        watts = round(3500 * ratio**1.3)
        profiles.append(Profile(name, mhz, round(12.0 + 1.4 * ratio, 2), watts, 200.0 * ratio))
    return tuple(profiles)


class FakeLuxMiner:
    """One LuxOS miner on `address:4028`. Use `async with FakeLuxMiner.start(...)`."""

    def __init__(
        self,
        address: str,
        *,
        model: str = "Antminer S21",
        profiles: tuple[Profile, ...] | None = None,
        idle_watts: int = 18,
        session_ttl_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.address = address
        self.model = model
        self.profiles = {p.name: p for p in profiles or s21_profiles()}
        self.profile = "default" if "default" in self.profiles else next(iter(self.profiles))
        self.idle_watts = idle_watts
        self.session_ttl_s = session_ttl_s
        self.hashing = True
        self.atm_enabled = True  # LuxOS's thermal management: profiles change only with it off
        self.received: list[str] = []  # every command, in arrival order ("a+b" split)
        self.slept_at: float | None = None  # clock() when the last `curtail sleep` arrived
        self._clock = clock
        self._session: str | None = None
        self._session_used = 0.0
        self._mute = asyncio.Event()
        self._stopping = asyncio.Event()  # ends the connections a muted miner holds
        self._server: asyncio.Server | None = None

    # -- the state tests read ------------------------------------------------------------------

    @property
    def watts(self) -> int:
        return self.profiles[self.profile].watts if self.hashing else self.idle_watts

    @property
    def hashrate_ths(self) -> float:
        return self.profiles[self.profile].hashrate_ths if self.hashing else 0.0

    def mute(self) -> None:
        """From now on accept connections and never answer: a miner whose API hangs."""
        self._mute.set()

    # -- lifecycle -------------------------------------------------------------------------------

    @classmethod
    async def start(cls, **kwargs: Any) -> Self:
        """A fake listening on port 4028 of a loopback address no other listener holds."""
        for _ in range(50):
            miner = cls(free_loopback_address(), **kwargs)
            try:
                await miner._listen()
            except OSError:
                continue  # another fake took this address meanwhile
            return miner
        raise RuntimeError("no free loopback address for a fake miner")

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.address, RPC_PORT)

    async def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the wire --------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await _read_request(reader)
            if self._mute.is_set():
                await self._stopping.wait()  # hold the connection open, say nothing
            if request is None or self._stopping.is_set():
                return
            # cgminer and LuxOS end each answer with a NUL byte, then close the connection.
            writer.write(json.dumps(self.answer(request)).encode() + b"\x00")
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def answer(self, request: Answer) -> Answer:
        """The firmware's answer to one request: `{"command": "a+b", "parameter": "p1,p2"}`."""
        command = str(request.get("command", ""))
        raw = request.get("parameter")
        params = [] if raw in (None, "") else str(raw).split(",")
        if "+" in command:
            # A multicommand takes no parameters; each answer is wrapped in a list.
            names = command.split("+")
            self.received.extend(names)
            answers: Answer = {name: [self._one(name, [])] for name in names}
            answers["id"] = 1
            return answers
        self.received.append(command)
        return self._one(command, params)

    def _one(self, command: str, params: list[str]) -> Answer:
        handler = self._handlers_by_name().get(command)
        if handler is None:
            return self._status(14, "Invalid command", ok=False)
        if command in _PRIVILEGED:
            if not params or not self._session_valid(params[0]):
                return self._status(8, "Invalid session id", ok=False)
            self._session_used = self._clock()
            params = params[1:]
        return handler(params)

    def _handlers_by_name(self) -> dict[str, Callable[[list[str]], Answer]]:
        return {
            "version": self._version,
            "devdetails": self._devdetails,
            "config": self._config,
            "summary": self._summary,
            "stats": self._stats,
            "power": self._power,
            "profiles": self._profiles,
            "fans": self._fans,
            "tempctrl": self._tempctrl,
            "pools": self._pools,
            "groups": self._groups,
            "atm": self._atm,
            "session": self._session_get,
            "logon": self._logon,
            "logoff": self._logoff,
            "curtail": self._curtail,
            "profileset": self._profileset,
            "atmset": self._atmset,
        }

    def _status(self, code: int, msg: str, *, ok: bool = True) -> Answer:
        return {
            "STATUS": [
                {
                    "Code": code,
                    "Description": f"LUXminer {FIRMWARE}",
                    "Msg": msg,
                    "STATUS": "S" if ok else "E",
                    "When": int(time.time()),
                }
            ],
            "id": 1,
        }

    def _with(self, code: int, msg: str, key: str, rows: list[Answer]) -> Answer:
        return {**self._status(code, msg), key: rows}

    # -- sessions --------------------------------------------------------------------------------

    def _session_valid(self, session_id: str) -> bool:
        return self._session_alive() and session_id == self._session

    def _session_alive(self) -> bool:
        if self._session is None:
            return False
        if self.session_ttl_s is not None and (
            self._clock() - self._session_used > self.session_ttl_s
        ):
            self._session = None
        return self._session is not None

    def _session_get(self, _: list[str]) -> Answer:
        current = self._session if self._session_alive() else ""
        return self._with(36, "Session", "SESSION", [{"SessionID": current}])

    def _logon(self, _: list[str]) -> Answer:
        if self._session_alive():
            return self._status(402, "Another session is active", ok=False)
        self._session = secrets.token_hex(4)
        self._session_used = self._clock()
        return self._with(37, "Session created", "SESSION", [{"SessionID": self._session}])

    def _logoff(self, _: list[str]) -> Answer:
        self._session = None
        return self._status(38, "Session closed")

    # -- writes ----------------------------------------------------------------------------------

    def _curtail(self, params: list[str]) -> Answer:
        mode = params[0] if params else ""
        if mode == "sleep":
            self.hashing = False
            self.slept_at = self._clock()
            return self._status(345, "Curtail mode: sleep")
        if mode == "wakeup":
            self.hashing = True
            return self._status(345, "Curtail mode: wakeup")
        return self._status(346, f"Invalid curtail mode: {mode!r}", ok=False)

    def _profileset(self, params: list[str]) -> Answer:
        name = params[0] if params else ""
        if name not in self.profiles:
            return self._status(357, f"Profile {name!r} not found", ok=False)
        if self.atm_enabled:
            # LuxOS's ATM owns the profile while it is on; pyasic turns it off around a change.
            return self._status(358, "Cannot change profile while ATM is enabled", ok=False)
        self.profile = name
        return self._with(356, "Profile set", "PROFILE", [{"Profile": name}])

    def _atmset(self, params: list[str]) -> Answer:
        for param in params:
            key, _, value = param.partition("=")
            if key == "enabled":
                self.atm_enabled = value == "true"
        return self._status(340, "Advanced Thermal Management configuration updated")

    # -- reads -----------------------------------------------------------------------------------

    def _version(self, _: list[str]) -> Answer:
        row = {
            "API": API_VERSION,
            "CompileTime": "Wed May 1 00:00:00 UTC 2024",
            "LUXminer": FIRMWARE,
            "Miner": FIRMWARE,
            "Type": self.model,
        }
        return self._with(22, "LUXminer versions", "VERSION", [row])

    def _devdetails(self, _: list[str]) -> Answer:
        rows = [
            {
                "DEVDETAILS": board,
                "Name": "BTM_SOC0",
                "ID": board,
                "Driver": "bitmain",
                "Kernel": "",
                "Model": self.model,
                "Device Path": "",
            }
            for board in range(3)
        ]
        return self._with(69, "Device Details", "DEVDETAILS", rows)

    def _config(self, _: list[str]) -> Answer:
        row = {
            "ASC Count": 3,
            "PGA Count": 0,
            "Pool Count": 1,
            "Strategy": "Failover",
            "Log Interval": 5,
            "Device Code": "",
            "OS": "Linux",
            "Hotplug": "None",
            "Profile": self.profile,
            "IsAtmEnabled": self.atm_enabled,
            "MACAddr": _mac(self.address),
            "RedLed": "off",
            "IsTuning": False,
        }
        return self._with(33, "CGMiner config", "CONFIG", [row])

    def _summary(self, _: list[str]) -> Answer:
        ghs = self.hashrate_ths * 1000
        row = {
            "Elapsed": 3600,
            "GHS 5s": round(ghs, 2),
            "GHS av": round(ghs, 2),
            "Accepted": 1200,
            "Rejected": 3,
            "Hardware Errors": 0,
        }
        return self._with(11, "Summary", "SUMMARY", [row])

    def _stats(self, _: list[str]) -> Answer:
        board_ghs = self.hashrate_ths * 1000 / 3
        ideal_ghs = self.profiles[self.profile].hashrate_ths * 1000
        chip_temp = "62-65-66-63" if self.hashing else "31-31-32-31"
        pcb_temp = "48-52-53-49" if self.hashing else "29-29-30-29"
        boards: Answer = {}
        for n in (1, 2, 3):
            boards[f"chain_rate{n}"] = f"{board_ghs:.2f}"
            boards[f"chain_acn{n}"] = 108
            boards[f"temp_chip{n}"] = chip_temp
            boards[f"temp_pcb{n}"] = pcb_temp
        head = {"STATS": 0, "ID": "BMM0", "Type": self.model, "Miner": FIRMWARE}
        body = {
            "STATS": 1,
            "ID": "BMM1",
            "Elapsed": 3600,
            "total_rateideal": round(ideal_ghs, 2),
            "rate_unit": "GH",
            **boards,
        }
        return self._with(70, "CGMiner stats", "STATS", [head, body])

    def _power(self, _: list[str]) -> Answer:
        return self._with(30, "Power", "POWER", [{"PSU": True, "Watts": self.watts}])

    def _profiles(self, _: list[str]) -> Answer:
        rows = [
            {
                "Profile Name": p.name,
                "Frequency": p.frequency_mhz,
                "Voltage": p.voltage,
                "Watts": p.watts,
                "Hashrate": round(p.hashrate_ths, 2),
                "IsTuned": False,
                "IsDynamic": False,
                "Step": "0",
            }
            for p in self.profiles.values()
        ]
        return self._with(32, "Profiles", "PROFILES", rows)

    def _fans(self, _: list[str]) -> Answer:
        rpm = 5400 if self.hashing else 1200
        rows = [{"FAN": n, "ID": n, "RPM": rpm, "Speed": 60} for n in range(4)]
        return {**self._with(202, "Fans", "FANS", rows), "FANCTRL": [{"MinFans": 4}]}

    def _tempctrl(self, _: list[str]) -> Answer:
        row = {"Mode": "Auto", "Target": 70, "Hot": 85, "Dangerous": 95}
        return self._with(200, "Temperature control", "TEMPCTRL", [row])

    def _pools(self, _: list[str]) -> Answer:
        row = {
            "POOL": 0,
            "URL": "stratum+tcp://btc.global.luxor.tech:700",
            "Status": "Alive",
            "Stratum Active": self.hashing,
            "User": "hashgrid.fake",
            "GROUP": 0,
            "Accepted": 1200,
            "Rejected": 3,
            "Get Failures": 0,
            "Remote Failures": 0,
        }
        return self._with(7, "1 Pool(s)", "POOLS", [row])

    def _groups(self, _: list[str]) -> Answer:
        return self._with(9, "1 Group(s)", "GROUPS", [{"GROUP": 0, "Name": "Default", "Quota": 1}])

    def _atm(self, _: list[str]) -> Answer:
        row = {
            "Enabled": self.atm_enabled,
            "MaxProfile": "565MHz",
            "MinProfile": "",
            "PostRampMinutes": 15,
            "StartupMinutes": 15,
            "TempWindow": 5.0,
        }
        return self._with(339, "ATM configuration values", "ATM", [row])


# Commands that take the session id as their first parameter (Luxor's `logon_required`).
_PRIVILEGED = {"logoff", "curtail", "profileset", "atmset"}


async def _read_request(reader: asyncio.StreamReader) -> Answer | None:
    """One JSON request; clients send it without closing their side, so parse as bytes come."""
    data = b""
    decoder = json.JSONDecoder()
    while chunk := await reader.read(4096):
        data += chunk
        try:
            request, _ = decoder.raw_decode(data.decode())
        except (ValueError, UnicodeDecodeError):
            continue
        return request if isinstance(request, dict) else None
    return None


def free_loopback_address() -> str:
    """A random address in 127.0.0.0/8 where port 4028 is free right now."""
    for _ in range(100):
        address = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        with socket.socket() as probe:
            try:
                probe.bind((address, RPC_PORT))
            except OSError:
                continue
        return address
    raise RuntimeError("no loopback address with port 4028 free")


def _mac(address: str) -> str:
    octets = [int(part) for part in address.split(".")[1:]]
    return "02:00:00:" + ":".join(f"{o:02X}" for o in octets)
