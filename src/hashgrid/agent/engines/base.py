"""The seam every engine fits: how to launch it and how to tell it is healthy."""

from typing import Protocol

from hashgrid.contracts.agent import ModelSpec


class EngineRuntime(Protocol):
    name: str
    # GET this path answers 200 once the engine can serve requests.
    health_path: str

    def command(self, model: ModelSpec, host: str, port: int) -> list[str]:
        """The command line that serves `model` on `host:port` with an OpenAI-compatible API."""
        ...
