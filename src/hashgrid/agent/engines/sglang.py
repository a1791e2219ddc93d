"""SGLang through `sglang.launch_server` (OpenAI-compatible), on the GPUs the replica was
assigned.

Flag names are those of `ServerArgs.add_cli_args` in SGLang's python/sglang/srt/server_args.py:
--model-path, --served-model-name, --host, --port, --tp-size (alias of --tensor-parallel-size),
--context-length, --mem-fraction-static, --quantization and --enable-metrics, without which
SGLang serves no /metrics.
"""

import importlib.util
import sys

from hashgrid.agent.engines.base import Launch
from hashgrid.agent.engines.vllm import visible_gpus
from hashgrid.contracts.agent import Assignment
from hashgrid.contracts.engines import ENGINES

FACTS = ENGINES["sglang"]


class Sglang:
    name = FACTS.name
    health_path = FACTS.health_path
    metrics_path = FACTS.metrics_path

    def available(self) -> bool:
        return importlib.util.find_spec("sglang") is not None

    def launch(self, assignment: Assignment, model_path: str, host: str, port: int) -> Launch:
        model = assignment.model
        devices = visible_gpus(self.name, assignment)
        argv = [
            sys.executable,
            "-m",
            "sglang.launch_server",
            "--model-path",
            model_path,
            "--served-model-name",
            model.name,
            "--host",
            host,
            "--port",
            str(port),
            "--tp-size",
            str(model.tensor_parallel_size),
            "--context-length",
            str(model.context_length),
            "--mem-fraction-static",
            str(model.gpu_memory_fraction),
            "--enable-metrics",
        ]
        if model.quantization:
            argv += ["--quantization", model.quantization]
        if model.task == "embed":
            argv.append("--is-embedding")
        return Launch(argv, {"CUDA_VISIBLE_DEVICES": devices})


RUNTIME = Sglang()
