"""vLLM through its OpenAI-compatible server, on the GPUs the replica was assigned.

Flag names are those of vLLM's own parsers: `EngineArgs.add_cli_args` in vllm/engine/arg_utils.py
(--model, --served-model-name, --max-model-len, --quantization, --tensor-parallel-size,
--gpu-memory-utilization) and `FrontendArgs` in vllm/entrypoints/openai/cli_args.py (--host,
--port).
"""

import importlib.util
import sys

from hashgrid.agent.engines.base import Launch
from hashgrid.contracts.agent import Assignment
from hashgrid.contracts.engines import ENGINES

FACTS = ENGINES["vllm"]


def visible_gpus(engine: str, assignment: Assignment) -> str:
    """`CUDA_VISIBLE_DEVICES` for a GPU-only engine: exactly one assigned GPU per tensor-parallel
    rank. Raises ValueError when the assignment cannot be served that way."""
    gpus = assignment.gpus
    model = assignment.model
    if not gpus:
        raise ValueError(
            f"{engine} serves only from GPUs, but replica {assignment.replica_id} "
            f"({model.name}) was assigned none"
        )
    if len(set(gpus)) != len(gpus):
        raise ValueError(
            f"replica {assignment.replica_id} ({model.name}) lists a GPU twice: {gpus}"
        )
    if model.tensor_parallel_size != len(gpus):
        raise ValueError(
            f"{engine} runs one tensor-parallel rank per GPU: {model.name} has "
            f"tensor_parallel_size {model.tensor_parallel_size}, but replica "
            f"{assignment.replica_id} was assigned {len(gpus)} GPU(s) {gpus}"
        )
    return ",".join(map(str, gpus))


class Vllm:
    name = FACTS.name
    health_path = FACTS.health_path
    metrics_path = FACTS.metrics_path

    def available(self) -> bool:
        return importlib.util.find_spec("vllm") is not None

    def launch(self, assignment: Assignment, model_path: str, host: str, port: int) -> Launch:
        model = assignment.model
        devices = visible_gpus(self.name, assignment)
        argv = [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            model_path,
            "--served-model-name",
            model.name,
            "--host",
            host,
            "--port",
            str(port),
            "--tensor-parallel-size",
            str(model.tensor_parallel_size),
            "--max-model-len",
            str(model.context_length),
            "--gpu-memory-utilization",
            str(model.gpu_memory_fraction),
        ]
        if model.quantization:
            argv += ["--quantization", model.quantization]
        if model.task == "embed":  # vLLM >= 0.10.1 (before: --task embed)
            argv += ["--runner", "pooling", "--convert", "embed"]
        return Launch(argv, {"CUDA_VISIBLE_DEVICES": devices})


RUNTIME = Vllm()
