"""What a model repository holds, read without its weights, so that registering one in the
catalog is one command: the bytes of the files its format needs (from the hub's file listing,
or a folder's files) and the architecture figures that size its KV cache (from `config.json`).
"""

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hashgrid.contracts import sources


@dataclass(frozen=True)
class RepositoryFacts:
    size_bytes: int  # of the files an engine reads
    architecture: dict[str, int] | None  # as the catalog takes it; None when config.json lacks it


def describe_repository(
    source: str, files: tuple[str, ...], endpoint: str | None = None
) -> RepositoryFacts:
    """The facts of `hf://OWNER/REPO[@REVISION]` as the hub lists it (blocking; `endpoint`:
    the hub's URL, default HF_ENDPOINT or huggingface.co). Raises on a hub or network error."""
    from huggingface_hub import HfApi, RepoFile, hf_hub_download
    from huggingface_hub.utils import filter_repo_objects  # type: ignore[attr-defined]

    hf = sources.parse_hf(source)
    if hf.path is not None:
        raise ValueError(f"{source} is one file, not a repository")
    tree = HfApi(endpoint=endpoint).list_repo_tree(hf.repo_id, revision=hf.revision, recursive=True)
    sizes = {entry.path: entry.size for entry in tree if isinstance(entry, RepoFile)}
    wanted = set(filter_repo_objects(list(sizes), allow_patterns=list(files) or None))
    architecture = None
    if "config.json" in wanted:
        with tempfile.TemporaryDirectory() as cache:
            config = hf_hub_download(
                hf.repo_id, "config.json", revision=hf.revision, cache_dir=cache, endpoint=endpoint
            )
            architecture = architecture_of(json.loads(Path(config).read_text()))
    return RepositoryFacts(sum(sizes[path] for path in wanted), architecture)


def describe_folder(folder: Path) -> RepositoryFacts:
    """The facts of a repository laid out in `folder` (every file counts)."""
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    config = folder / "config.json"
    try:
        architecture = architecture_of(json.loads(config.read_text()))
    except (OSError, ValueError):
        architecture = None
    return RepositoryFacts(size, architecture)


def architecture_of(config: Any) -> dict[str, int] | None:
    """Layers, KV heads, head size and KV bytes per element from a transformers `config.json`;
    None when it does not say (a multimodal model nests them under `text_config`)."""
    if isinstance(config, dict) and isinstance(config.get("text_config"), dict):
        config = {**config, **config["text_config"]}
    if not isinstance(config, dict):
        return None
    try:
        layers = int(config["num_hidden_layers"])
        heads = int(config["num_attention_heads"])
        kv_heads = int(config.get("num_key_value_heads") or heads)
        head_dim = int(config.get("head_dim") or int(config["hidden_size"]) // heads)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    if min(layers, kv_heads, head_dim) < 1:
        return None
    # An fp8 KV cache is an engine setting, not the checkpoint's: fp16/bf16 is what engines use.
    return {"layers": layers, "kv_heads": kv_heads, "head_dim": head_dim, "kv_bytes_per_element": 2}
