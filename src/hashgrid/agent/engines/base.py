"""The seam every engine fits: whether it is installed, how to launch it, how to probe it."""

from dataclasses import dataclass, field
from typing import Protocol

from hashgrid.contracts.agent import Assignment


@dataclass(frozen=True)
class Launch:
    """A command line and the environment it adds to the agent's own."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


class EngineRuntime(Protocol):
    """How this node runs one engine of the table in `contracts/engines.py`. The paths are the
    table's, unless the engine as installed here differs (llama-cpp-python has neither)."""

    name: str
    # GET this path answers 2xx once the engine can serve requests, and keeps answering while
    # it serves (the agent probes it every few seconds): it must not wait behind requests.
    health_path: str
    # Prometheus text with the engine's own load figures, where the engine has them.
    metrics_path: str | None

    def available(self) -> bool:
        """Whether this engine is installed on this node."""
        ...

    def launch(self, assignment: Assignment, model_path: str, host: str, port: int) -> Launch:
        """How to serve `assignment` from the weights at `model_path` on `host:port`."""
        ...
