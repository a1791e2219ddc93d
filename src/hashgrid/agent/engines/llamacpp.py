"""llama.cpp through llama-cpp-python's OpenAI-compatible server (CPU or consumer GPU), launched
by `llamacpp_server` so that its streams end with usage like every other engine's."""

import importlib.util
import sys

from hashgrid.agent.engines.base import Launch
from hashgrid.contracts.agent import Assignment


class LlamaCpp:
    name = "llamacpp"
    # llama-cpp-python's server (0.3.x) has no /health. It listens only once the model is loaded,
    # so any answer means ready; /openapi.json answers without taking the model's lock, which
    # /v1/models takes: a probe there waits behind a generation and, as a new request, cuts a
    # running stream short (the server's `interrupt_requests`).
    health_path = "/openapi.json"
    metrics_path: str | None = None  # no /metrics either: its load is what gateways observe

    def available(self) -> bool:
        return importlib.util.find_spec("llama_cpp") is not None

    def launch(self, assignment: Assignment, model_path: str, host: str, port: int) -> Launch:
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
        if not assignment.gpus:
            return Launch(argv, {"CUDA_VISIBLE_DEVICES": ""})
        # Offload every layer to the assigned GPUs.
        argv += ["--n_gpu_layers", "-1"]
        return Launch(argv, {"CUDA_VISIBLE_DEVICES": ",".join(map(str, assignment.gpus))})
