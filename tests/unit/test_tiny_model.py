"""The tiny GGUF generator writes a small, deterministic, well-formed llama file."""

from pathlib import Path

import gguf

from hashgrid.models.tiny import make_tiny_gguf

# token_embd, output_norm, output, plus nine tensors in each of the two blocks.
_EXPECTED_TENSORS = 3 + 9 * 2


def test_writes_file_under_one_megabyte(tmp_path: Path) -> None:
    path = make_tiny_gguf(tmp_path / "nested" / "tiny.gguf")
    assert path == tmp_path / "nested" / "tiny.gguf"
    assert 0 < path.stat().st_size < 1_000_000


def test_same_seed_gives_same_bytes(tmp_path: Path) -> None:
    first = make_tiny_gguf(tmp_path / "a.gguf", seed=7).read_bytes()
    second = make_tiny_gguf(tmp_path / "b.gguf", seed=7).read_bytes()
    assert first == second


def test_different_seed_gives_different_bytes(tmp_path: Path) -> None:
    first = make_tiny_gguf(tmp_path / "a.gguf", seed=0).read_bytes()
    second = make_tiny_gguf(tmp_path / "b.gguf", seed=1).read_bytes()
    assert first != second


def test_reads_back_as_llama_with_all_tensors(tmp_path: Path) -> None:
    reader = gguf.GGUFReader(make_tiny_gguf(tmp_path / "tiny.gguf"))
    arch = reader.fields["general.architecture"]
    assert bytes(arch.parts[arch.data[0]]).decode() == "llama"
    assert len(reader.tensors) == _EXPECTED_TENSORS
