"""The vLLM and SGLang engines' command lines, environment and GPU rules.

Each flag name was checked against the engine's own argument parser:
- vLLM: `EngineArgs.add_cli_args` in vllm-project/vllm vllm/engine/arg_utils.py (--model,
  --served-model-name, --max-model-len, --quantization, --tensor-parallel-size,
  --gpu-memory-utilization) and `FrontendArgs` in vllm/entrypoints/openai/cli_args.py (--host,
  --port); docs.vllm.ai "Production Metrics" for /metrics, and /health in
  vllm/entrypoints/serve/instrumentator/health.py.
- SGLang: `ServerArgs.add_cli_args` in sgl-project/sglang python/sglang/srt/server_args.py
  (--model-path, --served-model-name, --host, --port, --tensor-parallel-size/--tp-size,
  --context-length, --mem-fraction-static, --quantization, --enable-metrics); docs.sglang.io
  "Server Arguments" and "Production Metrics" (/metrics only with --enable-metrics).
"""

import sys

import pytest

from hashgrid.agent.engines import ENGINES
from hashgrid.agent.engines.base import EngineRuntime
from hashgrid.agent.engines.sglang import Sglang
from hashgrid.agent.engines.vllm import Vllm
from hashgrid.contracts.agent import Assignment, ModelSpec

SPEC = ModelSpec(
    name="llama-70b",
    source="/models/llama 70b",
    format="safetensors",
    context_length=8192,
    tensor_parallel_size=2,
    gpu_memory_fraction=0.85,
)


def assignment(spec: ModelSpec = SPEC, gpus: list[int] | None = None) -> Assignment:
    return Assignment(
        replica_id="r1",
        deployment="d",
        engine="vllm",
        model=spec,
        gpus=[3, 1] if gpus is None else gpus,
    )


def value_after(argv: list[str], flag: str) -> str:
    assert argv.count(flag) == 1, f"{flag} should appear once in {argv}"
    return argv[argv.index(flag) + 1]


# The flag each engine takes for each field of the spec.
FLAGS = {
    "vllm": {
        "model": "--model",
        "name": "--served-model-name",
        "tp": "--tensor-parallel-size",
        "context": "--max-model-len",
        "memory": "--gpu-memory-utilization",
    },
    "sglang": {
        "model": "--model-path",
        "name": "--served-model-name",
        "tp": "--tp-size",
        "context": "--context-length",
        "memory": "--mem-fraction-static",
    },
}
RUNTIMES: list[EngineRuntime] = [Vllm(), Sglang()]
IDS = ["vllm", "sglang"]


def test_vllm_runs_the_openai_api_server_module_with_the_current_python() -> None:
    argv = Vllm().launch(assignment(), "/cache/llama", "127.0.0.1", 1).argv
    assert argv[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]


def test_sglang_runs_launch_server_with_the_current_python() -> None:
    argv = Sglang().launch(assignment(), "/cache/llama", "127.0.0.1", 1).argv
    assert argv[:3] == [sys.executable, "-m", "sglang.launch_server"]


@pytest.mark.parametrize("engine", RUNTIMES, ids=IDS)
def test_launch_passes_each_field_as_its_own_argv_item(engine: EngineRuntime) -> None:
    flags = FLAGS[engine.name]
    argv = engine.launch(assignment(), "/cache/llama 70b", "10.0.0.5", 40123).argv
    assert all(isinstance(a, str) for a in argv)
    assert value_after(argv, flags["model"]) == "/cache/llama 70b"  # the local path, one item
    assert value_after(argv, flags["name"]) == "llama-70b"
    assert value_after(argv, "--host") == "10.0.0.5"
    assert value_after(argv, "--port") == "40123"
    assert value_after(argv, flags["tp"]) == "2"
    assert value_after(argv, flags["context"]) == "8192"
    assert value_after(argv, flags["memory"]) == "0.85"


@pytest.mark.parametrize("engine", RUNTIMES, ids=IDS)
def test_launch_uses_the_spec_defaults(engine: EngineRuntime) -> None:
    flags = FLAGS[engine.name]
    spec = ModelSpec(name="m", source="/m")
    argv = engine.launch(assignment(spec, gpus=[0]), "/m", "127.0.0.1", 1).argv
    assert value_after(argv, flags["tp"]) == "1"
    assert value_after(argv, flags["context"]) == "2048"
    assert value_after(argv, flags["memory"]) == "0.9"


@pytest.mark.parametrize("engine", RUNTIMES, ids=IDS)
def test_quantization_is_passed_only_when_the_spec_sets_it(engine: EngineRuntime) -> None:
    plain = engine.launch(assignment(), "/m", "127.0.0.1", 1).argv
    assert "--quantization" not in plain
    spec = SPEC.model_copy(update={"quantization": "awq"})
    quantized = engine.launch(assignment(spec), "/m", "127.0.0.1", 1).argv
    assert value_after(quantized, "--quantization") == "awq"


def test_sglang_enables_its_metrics_endpoint() -> None:
    argv = Sglang().launch(assignment(), "/m", "127.0.0.1", 1).argv
    assert "--enable-metrics" in argv


@pytest.mark.parametrize("engine", RUNTIMES, ids=IDS)
def test_the_engine_sees_only_its_assigned_gpus_in_the_given_order(
    engine: EngineRuntime,
) -> None:
    launch = engine.launch(assignment(gpus=[3, 1]), "/m", "127.0.0.1", 1)
    assert launch.env == {"CUDA_VISIBLE_DEVICES": "3,1"}


@pytest.mark.parametrize("engine", RUNTIMES, ids=IDS)
@pytest.mark.parametrize("gpus", [[0], [0, 1, 2]])
def test_launch_refuses_a_tensor_parallel_size_unlike_the_gpu_count(
    engine: EngineRuntime, gpus: list[int]
) -> None:
    with pytest.raises(ValueError, match=r"tensor_parallel_size 2.*assigned \d GPU"):
        engine.launch(assignment(gpus=gpus), "/m", "127.0.0.1", 1)


@pytest.mark.parametrize("engine", RUNTIMES, ids=IDS)
def test_launch_refuses_a_replica_without_gpus(engine: EngineRuntime) -> None:
    spec = ModelSpec(name="m", source="/m")  # tensor_parallel_size 1, still no GPU
    with pytest.raises(ValueError, match="serves only from GPUs"):
        engine.launch(assignment(spec, gpus=[]), "/m", "127.0.0.1", 1)


@pytest.mark.parametrize("engine", RUNTIMES, ids=IDS)
def test_launch_refuses_a_gpu_listed_twice(engine: EngineRuntime) -> None:
    with pytest.raises(ValueError, match="lists a GPU twice"):
        engine.launch(assignment(gpus=[1, 1]), "/m", "127.0.0.1", 1)


@pytest.mark.parametrize("engine", RUNTIMES, ids=IDS)
def test_engines_registers_the_runtime_under_its_name(engine: EngineRuntime) -> None:
    registered = ENGINES[engine.name]
    assert type(registered) is type(engine)
    assert registered.name == engine.name


@pytest.mark.parametrize("engine", RUNTIMES, ids=IDS)
def test_engine_is_probed_on_health_and_metrics(engine: EngineRuntime) -> None:
    assert engine.health_path == "/health"
    assert engine.metrics_path == "/metrics"


@pytest.mark.parametrize("engine", RUNTIMES, ids=IDS)
def test_engine_is_unavailable_where_its_package_is_not_installed(
    engine: EngineRuntime,
) -> None:
    # Neither vllm nor sglang is a dependency of this project or installed in its test env.
    assert not engine.available()


@pytest.mark.parametrize("engine", RUNTIMES, ids=IDS)
def test_available_looks_the_package_up_by_its_module_name(
    engine: EngineRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """available() asks importlib for the engine's module, without importing it."""
    asked: list[str] = []

    def find_spec(name: str) -> object:
        asked.append(name)
        return object()

    monkeypatch.setattr("importlib.util.find_spec", find_spec)
    assert engine.available()
    assert asked == [engine.name]


def test_an_embedding_model_runs_vllm_as_a_pooling_model() -> None:
    """vLLM >= 0.10.1 (docs.vllm.ai "Pooling Models": --runner pooling, --convert embed)."""
    embed = SPEC.model_copy(update={"task": "embed"})
    argv = Vllm().launch(assignment(embed), "/m", "127.0.0.1", 1).argv
    assert value_after(argv, "--runner") == "pooling"
    assert value_after(argv, "--convert") == "embed"
    assert "--runner" not in Vllm().launch(assignment(), "/m", "127.0.0.1", 1).argv


def test_an_embedding_model_runs_sglang_with_is_embedding() -> None:
    """SGLang's ServerArgs: --is-embedding."""
    embed = SPEC.model_copy(update={"task": "embed"})
    assert "--is-embedding" in Sglang().launch(assignment(embed), "/m", "127.0.0.1", 1).argv
    assert "--is-embedding" not in Sglang().launch(assignment(), "/m", "127.0.0.1", 1).argv
