"""The tiny GGUF loads in llama.cpp and generates readable text until max_tokens."""

from pathlib import Path

import pytest
from llama_cpp import Llama

from hashgrid.models.tiny import make_tiny_gguf


@pytest.fixture
def llm(tmp_path: Path) -> Llama:
    return Llama(model_path=str(make_tiny_gguf(tmp_path / "tiny.gguf")), n_ctx=512, verbose=False)


def test_greedy_completion_runs_to_max_tokens(llm: Llama) -> None:
    result = llm.create_completion("hello world", max_tokens=8, temperature=0)
    choice = result["choices"][0]
    assert choice["text"].strip()
    assert choice["finish_reason"] == "length"
    assert result["usage"]["completion_tokens"] == 8


def test_chat_completion_renders_template_and_replies(llm: Llama) -> None:
    result = llm.create_chat_completion(
        messages=[{"role": "user", "content": "say hello"}], max_tokens=8, temperature=0
    )
    choice = result["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"]
    assert choice["finish_reason"] == "length"
