"""A repository's architecture figures, as `config.json` gives them (transformers' names)."""

import json
from pathlib import Path

from hashgrid.models.hub import architecture_of, describe_folder

LLAMA_3_8B = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 4096,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "torch_dtype": "bfloat16",
}


def test_grouped_query_attention_sizes_the_kv_cache_by_its_kv_heads() -> None:
    assert architecture_of(LLAMA_3_8B) == {
        "layers": 32,
        "kv_heads": 8,
        "head_dim": 128,  # hidden_size / attention heads
        "kv_bytes_per_element": 2,
    }


def test_an_explicit_head_dim_wins_over_the_hidden_size() -> None:
    qwen3 = {**LLAMA_3_8B, "head_dim": 256}
    assert architecture_of(qwen3) == {**architecture_of(LLAMA_3_8B), "head_dim": 256}  # type: ignore[dict-item]


def test_without_kv_heads_every_attention_head_has_its_own() -> None:
    old = {k: v for k, v in LLAMA_3_8B.items() if k != "num_key_value_heads"}
    assert architecture_of(old)["kv_heads"] == 32  # type: ignore[index]


def test_a_multimodal_model_is_read_from_its_text_config() -> None:
    gemma3 = {"architectures": ["Gemma3ForConditionalGeneration"], "text_config": LLAMA_3_8B}
    assert architecture_of(gemma3) == architecture_of(LLAMA_3_8B)


def test_a_config_that_does_not_say_is_no_architecture() -> None:
    assert architecture_of({"architectures": ["Whatever"]}) is None
    assert architecture_of({**LLAMA_3_8B, "num_hidden_layers": "many"}) is None
    assert architecture_of({**LLAMA_3_8B, "num_attention_heads": 0}) is None
    assert architecture_of([]) is None


def test_a_folder_counts_every_file_and_reads_its_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_3_8B))
    (tmp_path / "model.safetensors").write_bytes(b"w" * 100)
    facts = describe_folder(tmp_path)
    assert facts.size_bytes == 100 + (tmp_path / "config.json").stat().st_size
    assert facts.architecture == architecture_of(LLAMA_3_8B)
    (tmp_path / "config.json").unlink()
    assert describe_folder(tmp_path).architecture is None
