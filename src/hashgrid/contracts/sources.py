"""Where a model's weights come from, as a catalog source string: read by the catalog (does the
source fit the model's format?) and by the agent's model store (what to fetch).

- a path on the nodes: a file (GGUF) or a folder (a safetensors repository laid out on disk);
- `http(s)://...`: one file;
- `hf://OWNER/REPO/PATH[@REVISION]`: one file of a Hugging Face repository;
- `hf://OWNER/REPO[@REVISION]`: a whole Hugging Face repository (config, tokenizer, shards).

REVISION is a branch, a tag or a commit (default `main`); a commit pins what every node serves.
"""

from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

HF_PREFIX: Final = "hf://"
HF_DEFAULT_REVISION: Final = "main"


@dataclass(frozen=True)
class HfSource:
    owner: str
    repo: str
    path: str | None  # a file in the repository; None: the whole repository
    revision: str

    @property
    def repo_id(self) -> str:
        return f"{self.owner}/{self.repo}"


def parse_hf(source: str) -> HfSource:
    """An `hf://` source's parts. Raises ValueError when it is not one."""
    if not source.startswith(HF_PREFIX):
        raise ValueError(f"not a Hugging Face source: {source!r}")
    body = source.removeprefix(HF_PREFIX)
    revision = HF_DEFAULT_REVISION
    if "@" in body:
        body, _, revision = body.rpartition("@")
    segments = body.split("/")
    if len(segments) < 2 or not revision or any(s in ("", ".", "..") for s in segments):
        raise ValueError(
            f"bad Hugging Face source {source!r}: expected hf://OWNER/REPO[@REVISION] (a "
            "repository) or hf://OWNER/REPO/PATH[@REVISION] (one file)"
        )
    path = "/".join(segments[2:]) or None
    return HfSource(segments[0], segments[1], path, revision)


def is_remote(source: str) -> bool:
    """Whether nodes download `source` (else it is a path on the nodes)."""
    return source.startswith(HF_PREFIX) or urlsplit(source).scheme in ("http", "https")


def is_repository(source: str) -> bool:
    """Whether `source` names a whole Hugging Face repository rather than one file (a malformed
    `hf://` source names neither)."""
    try:
        return source.startswith(HF_PREFIX) and parse_hf(source).path is None
    except ValueError:
        return False
