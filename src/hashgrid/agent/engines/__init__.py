"""Inference engines the agent can run, by the name a catalog model gives."""

from hashgrid.agent.engines.base import EngineRuntime, Launch
from hashgrid.agent.engines.llamacpp import LlamaCpp
from hashgrid.agent.engines.sglang import Sglang
from hashgrid.agent.engines.vllm import Vllm

ENGINES: dict[str, EngineRuntime] = {e.name: e for e in (LlamaCpp(), Vllm(), Sglang())}

__all__ = ["ENGINES", "EngineRuntime", "Launch"]
