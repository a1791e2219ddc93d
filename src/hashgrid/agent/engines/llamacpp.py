"""llama.cpp (CPU or GPU): its own `llama-server` where the node has it, else llama-cpp-python's
server, which the project installs.

llama-server batches requests continuously over `--parallel` slots, answers `/health` (503 while
the model loads, 200 once it serves) and, with `--metrics`, serves its load on `/metrics`. It is
found as `HASHGRID_LLAMA_SERVER` (a path; empty: never use it) or as `llama-server` on PATH when
the agent starts. llama-cpp-python's server (`llamacpp_server`, which makes its streams end with
usage like every other engine's) serves one request at a time and has neither endpoint.
"""

import importlib.util
import os
import shutil
import sys

from hashgrid.agent.engines.base import Launch
from hashgrid.contracts.agent import Assignment
from hashgrid.contracts.engines import ENGINES

FACTS = ENGINES["llamacpp"]
SERVER_ENV = "HASHGRID_LLAMA_SERVER"


def find_llama_server() -> str | None:
    """The llama-server binary this node runs, or None to use llama-cpp-python."""
    chosen = os.environ.get(SERVER_ENV)
    if chosen is not None:
        return chosen or None
    return shutil.which("llama-server")


class LlamaCpp:
    name = FACTS.name

    def __init__(self, server: str | None = None) -> None:
        self.server = server  # llama-server's path; None: llama-cpp-python's server
        if server is not None:
            self.health_path = FACTS.health_path
            self.metrics_path: str | None = FACTS.metrics_path
        else:
            # llama-cpp-python's server (0.3.x) has no /health. It listens only once the model
            # is loaded, so any answer means ready; /openapi.json answers without taking the
            # model's lock, which /v1/models takes: a probe there waits behind a generation and,
            # as a new request, cuts a running stream short (the server's `interrupt_requests`).
            self.health_path = "/openapi.json"
            self.metrics_path = None  # its load is what gateways observe

    def available(self) -> bool:
        if self.server is not None:
            return os.access(self.server, os.X_OK)
        return importlib.util.find_spec("llama_cpp") is not None

    def launch(self, assignment: Assignment, model_path: str, host: str, port: int) -> Launch:
        argv = (
            self._llama_server(assignment, model_path, host, port)
            if self.server is not None
            else _llama_cpp_python(assignment, model_path, host, port)
        )
        if not assignment.gpus:
            return Launch(argv, {"CUDA_VISIBLE_DEVICES": ""})
        return Launch(argv, {"CUDA_VISIBLE_DEVICES": ",".join(map(str, assignment.gpus))})

    def _llama_server(
        self, assignment: Assignment, model_path: str, host: str, port: int
    ) -> list[str]:
        assert self.server is not None
        model = assignment.model
        slots = FACTS.sequences
        argv = [
            self.server,
            "--model",
            model_path,
            "--alias",
            model.name,
            "--host",
            host,
            "--port",
            str(port),
            # The context is split evenly over the slots: each gets the model's full context,
            # as the replica's memory was sized (FACTS.sequences sequences at full length).
            "--ctx-size",
            str(model.context_length * slots),
            "--parallel",
            str(slots),
            "--metrics",
            # Every layer on the assigned GPUs, none on a CPU replica (a number, which every
            # release reads; newer ones also take `all`).
            "--n-gpu-layers",
            "999" if assignment.gpus else "0",
        ]
        if model.task == "embed":
            argv.append("--embedding")
        return argv


def _llama_cpp_python(assignment: Assignment, model_path: str, host: str, port: int) -> list[str]:
    model = assignment.model
    argv = [
        sys.executable,
        "-m",
        "hashgrid.agent.engines.llamacpp_server",
        "--model",
        model_path,
        "--model_alias",
        model.name,
        "--host",
        host,
        "--port",
        str(port),
        "--n_ctx",
        str(model.context_length),
        # By default a new request interrupts the one generating: one customer's request
        # would cut another's stream short. Requests wait their turn instead.
        "--interrupt_requests",
        "false",
    ]
    if model.task == "embed":
        argv += ["--embedding", "true"]
    if assignment.gpus:
        argv += ["--n_gpu_layers", "-1"]  # offload every layer to the assigned GPUs
    return argv


RUNTIME = LlamaCpp(find_llama_server())
