"""Inference engines the agent can run, by the name a catalog model gives.

Every engine of the shared table (`contracts/engines.py`) has a module here named after it that
exports `RUNTIME`, its `EngineRuntime`: a new engine is a row there and a module here.
"""

import importlib
from typing import cast

from hashgrid.agent.engines.base import EngineRuntime, Launch
from hashgrid.contracts import engines as table


def _runtimes() -> dict[str, EngineRuntime]:
    runtimes: dict[str, EngineRuntime] = {}
    for name in table.ENGINES:
        module = importlib.import_module(f"{__name__}.{name}")
        runtime = cast(EngineRuntime, module.RUNTIME)
        if runtime.name != name:
            raise RuntimeError(f"{module.__name__}.RUNTIME is named {runtime.name!r}, not {name!r}")
        runtimes[name] = runtime
    return runtimes


ENGINES: dict[str, EngineRuntime] = _runtimes()

__all__ = ["ENGINES", "EngineRuntime", "Launch"]
