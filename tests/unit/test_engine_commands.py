"""The llama.cpp engine's command lines (llama-server's, and llama-cpp-python's as the fallback),
and the stream-usage helpers of the fallback's server wrapper.

llama-server's flags are those of ggml-org/llama.cpp common/arg.cpp (--model, --alias, --host,
--port, --ctx-size, --parallel, --metrics, --n-gpu-layers, --embedding); tools/server/README.md
says the context is divided among the --parallel slots.
"""

import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from hashgrid.agent.engines import ENGINES
from hashgrid.agent.engines.llamacpp import SERVER_ENV, LlamaCpp, find_llama_server
from hashgrid.agent.engines.llamacpp_server import _ending_with_usage, _with_stream_usage
from hashgrid.contracts.agent import Assignment, ModelSpec
from hashgrid.contracts.engines import ENGINES as FACTS

SPEC = ModelSpec(name="tiny-chat", source="/models/with space/tiny.gguf", context_length=4096)


def assignment(spec: ModelSpec = SPEC, gpus: list[int] | None = None) -> Assignment:
    return Assignment(
        replica_id="r1", deployment="d", engine="llamacpp", model=spec, gpus=gpus or []
    )


def value_after(argv: list[str], flag: str) -> str:
    assert argv.count(flag) == 1, f"{flag} should appear once in {argv}"
    return argv[argv.index(flag) + 1]


SERVER = "/opt/llama.cpp/bin/llama-server"


def test_llama_server_serves_the_local_file_under_the_models_name_on_the_given_address() -> None:
    argv = LlamaCpp(SERVER).launch(assignment(), "/cache/tiny.gguf", "127.0.0.1", 40123).argv
    assert argv[0] == SERVER
    assert all(isinstance(a, str) for a in argv)
    assert value_after(argv, "--model") == "/cache/tiny.gguf"  # the local path, not the source
    assert value_after(argv, "--alias") == "tiny-chat"
    assert value_after(argv, "--host") == "127.0.0.1"
    assert value_after(argv, "--port") == "40123"


def test_llama_server_gives_each_of_its_slots_the_models_full_context() -> None:
    """The replica was sized for the table's sequences at full context; llama-server divides
    --ctx-size among its --parallel slots."""
    slots = FACTS["llamacpp"].sequences
    argv = LlamaCpp(SERVER).launch(assignment(), SPEC.source, "127.0.0.1", 1).argv
    assert value_after(argv, "--parallel") == str(slots)
    assert slots > 1  # continuous batching over several requests
    assert value_after(argv, "--ctx-size") == str(4096 * slots)


def test_llama_server_serves_its_metrics_and_is_probed_on_health() -> None:
    runtime = LlamaCpp(SERVER)
    argv = runtime.launch(assignment(), SPEC.source, "127.0.0.1", 1).argv
    assert "--metrics" in argv  # without it, /metrics answers 501
    assert (runtime.health_path, runtime.metrics_path) == ("/health", "/metrics")


def test_llama_server_offloads_every_layer_to_the_assigned_gpus_and_none_on_a_cpu() -> None:
    gpu = LlamaCpp(SERVER).launch(assignment(gpus=[1]), SPEC.source, "127.0.0.1", 1)
    assert gpu.env == {"CUDA_VISIBLE_DEVICES": "1"}
    assert int(value_after(gpu.argv, "--n-gpu-layers")) >= 999
    cpu = LlamaCpp(SERVER).launch(assignment(), SPEC.source, "127.0.0.1", 1)
    assert cpu.env == {"CUDA_VISIBLE_DEVICES": ""}
    assert value_after(cpu.argv, "--n-gpu-layers") == "0"


def test_llama_server_serves_embeddings_for_an_embedding_model() -> None:
    embed = SPEC.model_copy(update={"task": "embed"})
    assert "--embedding" in LlamaCpp(SERVER).launch(assignment(embed), "/m", "h", 1).argv
    assert "--embedding" not in LlamaCpp(SERVER).launch(assignment(), "/m", "h", 1).argv


def test_llama_server_is_found_on_path_unless_the_setting_names_one_or_none(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.delenv(SERVER_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_llama_server() == str(binary)
    assert LlamaCpp(find_llama_server()).available()
    monkeypatch.setenv(SERVER_ENV, "")  # never: llama-cpp-python even where llama-server is
    assert find_llama_server() is None
    monkeypatch.setenv(SERVER_ENV, "/elsewhere/llama-server")
    assert find_llama_server() == "/elsewhere/llama-server"
    monkeypatch.delenv(SERVER_ENV)
    monkeypatch.setenv("PATH", str(tmp_path / "none"))
    assert find_llama_server() is None


# --- llama-cpp-python's server, the fallback --------------------------------------------------


def test_launch_runs_the_server_module_with_the_current_python() -> None:
    argv = LlamaCpp().launch(assignment(), SPEC.source, "127.0.0.1", 40123).argv
    assert argv[:3] == [sys.executable, "-m", "hashgrid.agent.engines.llamacpp_server"]


def test_launch_passes_each_option_as_its_own_argv_item() -> None:
    argv = LlamaCpp().launch(assignment(), "/cache/tiny.gguf", "10.0.0.5", 40123).argv
    assert all(isinstance(a, str) for a in argv)
    assert value_after(argv, "--model") == "/cache/tiny.gguf"  # the local path, not the source
    assert value_after(argv, "--model_alias") == "tiny-chat"
    assert value_after(argv, "--host") == "10.0.0.5"
    assert value_after(argv, "--port") == "40123"
    assert value_after(argv, "--n_ctx") == "4096"


def test_launch_uses_the_default_context_length() -> None:
    spec = ModelSpec(name="m", source="/m.gguf")
    argv = LlamaCpp().launch(assignment(spec), "/m.gguf", "127.0.0.1", 1).argv
    assert value_after(argv, "--n_ctx") == "2048"


def test_a_cpu_replica_sees_no_gpu() -> None:
    launch = LlamaCpp().launch(assignment(), SPEC.source, "127.0.0.1", 1)
    assert launch.env == {"CUDA_VISIBLE_DEVICES": ""}
    assert "--n_gpu_layers" not in launch.argv


def test_a_gpu_replica_sees_only_its_gpus_and_offloads_every_layer() -> None:
    launch = LlamaCpp().launch(assignment(gpus=[2, 3]), SPEC.source, "127.0.0.1", 1)
    assert launch.env == {"CUDA_VISIBLE_DEVICES": "2,3"}
    assert value_after(launch.argv, "--n_gpu_layers") == "-1"


def test_engines_maps_llamacpp_to_the_llamacpp_runtime() -> None:
    engine = ENGINES["llamacpp"]
    assert isinstance(engine, LlamaCpp)
    assert engine.name == "llamacpp"
    assert engine.available()


def test_llama_cpp_python_is_probed_where_it_answers_and_has_no_metrics() -> None:
    engine = LlamaCpp(server=None)
    assert engine.health_path == "/openapi.json"  # answers while a generation runs
    assert engine.metrics_path is None
    assert engine.available()  # llama-cpp-python is a dependency


# --- stream usage --------------------------------------------------------------------------

CHUNKS = [
    {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 111, "model": "m0"},
    {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 222, "model": "tiny"},
]


def test_ending_with_usage_appends_exactly_one_usage_chunk() -> None:
    llama = SimpleNamespace(_hashgrid_usage=[12, 5])
    out = list(_ending_with_usage(llama, iter(CHUNKS), "chat.completion.chunk"))
    assert out[:-1] == CHUNKS
    assert out[-1] == {
        "id": "chatcmpl-2",
        "object": "chat.completion.chunk",
        "created": 222,
        "model": "tiny",
        "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    }


def test_ending_with_usage_uses_the_given_object_name() -> None:
    llama = SimpleNamespace(_hashgrid_usage=[1, 2])
    out = list(_ending_with_usage(llama, iter(CHUNKS), "text_completion"))
    assert out[-1]["object"] == "text_completion"


def test_ending_with_usage_reads_the_count_after_the_stream_ends() -> None:
    """The count grows while tokens stream, so the final chunk reports the finished count."""
    llama = SimpleNamespace(_hashgrid_usage=[3, 0])

    def streaming() -> Iterator[dict[str, Any]]:
        for chunk in CHUNKS:
            llama._hashgrid_usage[1] += 1
            yield chunk

    out = list(_ending_with_usage(llama, streaming(), "chat.completion.chunk"))
    assert out[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_ending_with_usage_of_an_empty_stream_still_ends_with_usage() -> None:
    llama = SimpleNamespace(_hashgrid_usage=[4, 0])
    out = list(_ending_with_usage(llama, iter([]), "chat.completion.chunk"))
    assert len(out) == 1
    assert out[0]["choices"] == []
    assert out[0]["usage"]["prompt_tokens"] == 4


def test_ending_with_usage_without_a_count_reports_zeros() -> None:
    out = list(_ending_with_usage(object(), iter(CHUNKS), "chat.completion.chunk"))
    assert out[-1]["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


class FakeLlama:
    def __init__(self) -> None:
        self._hashgrid_usage = [7, 3]
        self.seen: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def create(self, *args: Any, **kwargs: Any) -> Any:
        self.seen.append((args, kwargs))
        if kwargs.get("stream"):
            return iter(CHUNKS)
        return {"id": "cmpl-1", "usage": {"prompt_tokens": 7, "completion_tokens": 3}}


@pytest.mark.parametrize("stream", [None, False])
def test_with_stream_usage_leaves_non_streamed_results_untouched(stream: bool | None) -> None:
    wrapped = _with_stream_usage(FakeLlama.create, "chat.completion.chunk")
    llama = FakeLlama()
    kwargs = {} if stream is None else {"stream": stream}
    result = wrapped(llama, "prompt", **kwargs)
    assert result == {"id": "cmpl-1", "usage": {"prompt_tokens": 7, "completion_tokens": 3}}
    assert llama.seen == [(("prompt",), kwargs)]


def test_with_stream_usage_ends_streamed_results_with_usage() -> None:
    wrapped = _with_stream_usage(FakeLlama.create, "chat.completion.chunk")
    out = list(wrapped(FakeLlama(), messages=[], stream=True))
    assert out[:-1] == CHUNKS
    assert out[-1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def test_with_stream_usage_keeps_the_wrapped_name() -> None:
    assert _with_stream_usage(FakeLlama.create, "x").__name__ == "create"


def test_an_embedding_model_turns_on_the_servers_embeddings() -> None:
    """llama-cpp-python's ServerSettings: `embedding` (off by default)."""
    embed = SPEC.model_copy(update={"task": "embed"})
    argv = LlamaCpp().launch(assignment(embed), SPEC.source, "127.0.0.1", 1).argv
    assert value_after(argv, "--embedding") == "true"
    assert "--embedding" not in LlamaCpp().launch(assignment(), SPEC.source, "127.0.0.1", 1).argv


def test_one_request_waits_for_another_instead_of_interrupting_it() -> None:
    argv = LlamaCpp().launch(assignment(), SPEC.source, "127.0.0.1", 1).argv
    assert value_after(argv, "--interrupt_requests") == "false"
