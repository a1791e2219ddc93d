"""The engine table (`contracts/engines.py`) is where the server, the agent and the CLI read an
engine's facts: each derives its own view from it."""

import pytest
from pydantic import ValidationError

from hashgrid.agent.engines import ENGINES as RUNTIMES
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.engines import ENGINES, FORMATS, accepts, default_engine, engine_help
from hashgrid.contracts.sources import parse_hf


def test_every_engine_in_the_table_has_an_agent_runtime_of_its_name() -> None:
    assert set(RUNTIMES) == set(ENGINES)
    assert all(RUNTIMES[name].name == name for name in ENGINES)


@pytest.mark.parametrize("name", ["vllm", "sglang"])
def test_an_agent_runtime_probes_and_scrapes_where_the_table_says(name: str) -> None:
    assert RUNTIMES[name].health_path == ENGINES[name].health_path
    assert RUNTIMES[name].metrics_path == ENGINES[name].metrics_path


def test_every_engine_serves_known_formats_and_names_its_load_gauges() -> None:
    for facts in ENGINES.values():
        assert facts.formats
        assert set(facts.formats) <= set(FORMATS)
        assert facts.load_metrics is not None
        assert facts.load_metrics.running
        assert facts.load_metrics.waiting


def test_safetensors_repositories_go_to_the_gpu_engines_and_gguf_to_llamacpp_first() -> None:
    assert default_engine("gguf") == "llamacpp"
    assert default_engine("safetensors") == "vllm"
    assert not accepts("llamacpp", "safetensors")
    assert accepts("sglang", "safetensors")
    assert not accepts("no-such-engine", "gguf")


def test_help_texts_name_every_engine_and_where_it_runs() -> None:
    assert engine_help() == "llamacpp (CPU or GPU), vllm or sglang (GPUs only)"


def test_a_deployment_names_only_an_engine_of_the_table() -> None:
    assert DeploymentCreate(model="m", engine="sglang").engine == "sglang"
    with pytest.raises(ValidationError, match="unknown engine"):
        DeploymentCreate(model="m", engine="tgi")


def model(**fields: object) -> ModelCreate:
    return ModelCreate.model_validate({"name": "m", "size_bytes": 10, **fields})


def test_a_safetensors_repository_is_registered_for_vllm_by_default() -> None:
    m = model(
        source="hf://Qwen/Qwen2.5-0.5B-Instruct@7ae557604adf67be50417f59c2c2f167def9a775",
        format="safetensors",
    )
    assert (m.format, m.engine) == ("safetensors", "vllm")
    assert model(source="/models/qwen", format="safetensors", engine="sglang").engine == "sglang"


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"source": "/models/qwen", "format": "safetensors", "engine": "llamacpp"}, "serves gguf"),
        ({"source": "hf://o/r/model.gguf", "format": "safetensors"}, "whole repository"),
        ({"source": "https://host/model.safetensors", "format": "safetensors"}, "not one URL"),
        ({"source": "hf://o/r", "format": "gguf"}, "one file"),
        ({"source": "hf://o/r", "format": "safetensors", "sha256": "a" * 64}, "commit"),
        ({"source": "/m.gguf", "format": "onnx"}, "unknown model format"),
        ({"source": "/m.gguf", "engine": "tgi"}, "unknown engine"),
    ],
)
def test_the_catalog_refuses_a_model_its_engine_or_source_cannot_serve(
    fields: dict[str, object], why: str
) -> None:
    with pytest.raises(ValidationError, match=why):
        model(**fields)


def test_a_gguf_file_for_llamacpp_is_registered_as_before() -> None:
    m = model(source="hf://org/repo/model.gguf@v1")
    assert (m.format, m.engine) == ("gguf", "llamacpp")


def test_hf_sources_name_a_repository_or_one_file_at_a_revision() -> None:
    repo = parse_hf("hf://org/repo@abc123")
    assert (repo.repo_id, repo.path, repo.revision) == ("org/repo", None, "abc123")
    file = parse_hf("hf://org/repo/sub/model.gguf")
    assert (file.repo_id, file.path, file.revision) == ("org/repo", "sub/model.gguf", "main")
    for bad in ("hf://org", "hf://org/repo@", "hf://org/../x", "https://org/repo"):
        with pytest.raises(ValueError, match="Hugging Face source"):
            parse_hf(bad)
