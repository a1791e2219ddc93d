"""Engine processes on this machine, found as an operator would: by command line or by mark."""

import os
import signal
from contextlib import suppress
from pathlib import Path

import psutil

from hashgrid.agent.engine_records import ENGINE_MARK


def _live(proc: psutil.Process) -> bool:
    return proc.status() != psutil.STATUS_ZOMBIE


def engines_on_port(port: int) -> list[psutil.Process]:
    """Every live llama.cpp engine of the whole machine started to listen on `port`."""
    found = []
    for proc in psutil.process_iter():
        with suppress(psutil.Error):
            command = " ".join(proc.cmdline())
            if "llamacpp_server" in command and f"--port {port} " in f"{command} " and _live(proc):
                found.append(proc)
    return found


def engines_of(home: Path) -> list[psutil.Process]:
    """Every live engine process of the whole machine marked as started by the agent of `home`."""
    return engines_under(home / "engines")


def engines_under(path: Path) -> list[psutil.Process]:
    """Every live engine process of the whole machine whose record lies under `path`."""
    root = f"{path.resolve()}{os.sep}"
    found = []
    for proc in psutil.process_iter():
        with suppress(psutil.Error):
            if proc.environ().get(ENGINE_MARK, "").startswith(root) and _live(proc):
                found.append(proc)
    return found


def kill_engines_under(path: Path) -> None:
    """SIGKILL every engine whose record lies under `path`, with its process group."""
    for proc in engines_under(path):
        with suppress(ProcessLookupError):
            os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
