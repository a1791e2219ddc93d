"""An engine's process as the agent holds it: a child it started, or one adopted from an agent
that ran before it on this node. An adopted engine is not the agent's child, so its exit is
learnt by polling and its exit code is unknown."""

import asyncio
import signal
from contextlib import suppress
from pathlib import Path

import psutil

from hashgrid.common.processes import signal_group

POLL_S = 0.2
# psutil derives a start time from the boot time, which Linux gives in whole seconds and which
# moves when the clock is stepped; a recycled pid belongs to a process started long after.
CREATE_TIME_SLACK_S = 1.0


class EngineProcess:
    def __init__(
        self, pid: int, create_time: float, child: asyncio.subprocess.Process | None = None
    ) -> None:
        self.pid = pid
        self.create_time = create_time
        self._child = child

    @classmethod
    async def spawn(cls, argv: list[str], env: dict[str, str], log_path: Path) -> "EngineProcess":
        """Start an engine writing to `log_path`, in its own session: a signal to its group
        reaches all of it, and it outlives the agent (for the next agent to adopt)."""
        with log_path.open("ab") as log_file:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            create_time = psutil.Process(proc.pid).create_time()
        except psutil.Error:  # gone already; `wait` says how it ended
            create_time = 0.0
        return cls(proc.pid, create_time, proc)

    @classmethod
    def find(cls, pid: int, create_time: float) -> "EngineProcess | None":
        """Process `pid` if it is still the one started at `create_time` and not a zombie."""
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - create_time) > CREATE_TIME_SLACK_S:
                return None  # the pid was recycled: someone else's process
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None  # exited; an orphan's zombie lingers where nothing reaps it
        except psutil.Error:
            return None
        return cls(pid, create_time)

    @property
    def returncode(self) -> int | None:
        """The exit code once a child exited; always None for an adopted engine."""
        return self._child.returncode if self._child is not None else None

    def running(self) -> bool:
        if self._child is not None:
            return self._child.returncode is None
        return self.find(self.pid, self.create_time) is not None

    async def wait(self) -> None:
        """Return once the engine has exited."""
        if self._child is not None:
            await self._child.wait()
            return
        # Not our child: no one tells us of its exit, so look until it is gone.
        while True:
            if not self.running():
                return
            await asyncio.sleep(POLL_S)

    async def exits_within(self, seconds: float) -> bool:
        """Wait up to `seconds` for the engine to exit; whether it did."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self.wait(), seconds)
            return True
        return False

    async def stop(self, grace_s: float) -> None:
        """SIGTERM the engine's process group, and SIGKILL it if still running after `grace_s`."""
        if not self.running():
            return
        signal_group(self.pid, signal.SIGTERM)
        if not await self.exits_within(grace_s):
            signal_group(self.pid, signal.SIGKILL)
            await self.wait()
