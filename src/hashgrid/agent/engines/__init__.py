"""Inference engines the agent can run, by the name a catalog model gives."""

from hashgrid.agent.engines.base import EngineRuntime, Launch
from hashgrid.agent.engines.llamacpp import LlamaCpp

ENGINES: dict[str, EngineRuntime] = {e.name: e for e in (LlamaCpp(),)}

__all__ = ["ENGINES", "EngineRuntime", "Launch"]
