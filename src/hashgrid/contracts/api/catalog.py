from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from hashgrid.contracts import sources
from hashgrid.contracts.api.common import Out
from hashgrid.contracts.bounds import INT64_MAX, text
from hashgrid.contracts.engines import (
    DEFAULT_ENGINE,
    ENGINES,
    FORMATS,
    EngineName,
    FormatName,
    default_engine,
)

ModelName = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
]

Task = Literal["generate", "embed"]


class Architecture(BaseModel):
    """The figures that size a model's KV cache (from its config.json or GGUF metadata)."""

    layers: int = Field(ge=1, le=10_000, description="Transformer layers (num_hidden_layers)")
    kv_heads: int = Field(ge=1, le=10_000, description="Key/value heads (num_key_value_heads)")
    head_dim: int = Field(ge=1, le=100_000, description="Size of one attention head")
    kv_bytes_per_element: int = Field(2, ge=1, le=8, description="2 for fp16/bf16, 1 for fp8")


class ModelCreate(BaseModel):
    name: ModelName
    source: Annotated[str, text(2000, min_length=1)] = Field(
        description="Where nodes find the weights: a path on the nodes (a GGUF file, or a folder "
        "of safetensors), an http(s) URL of one file, hf://OWNER/REPO/PATH[@REVISION] (one file "
        "of a Hugging Face repository) or hf://OWNER/REPO[@REVISION] (a whole repository)"
    )
    format: FormatName = Field("gguf", description="gguf: one file; safetensors: a repository")
    engine: EngineName = Field(
        DEFAULT_ENGINE,
        description="The engine that serves it unless a deployment names another; default: "
        "llamacpp for gguf, the first GPU engine that serves the format otherwise",
    )
    size_bytes: int = Field(gt=0, le=INT64_MAX, description="Size of the weights, for placement")
    context_length: int = Field(2048, ge=16, le=1_048_576)
    task: Task = Field("generate", description="generate: chat and completions; embed: embeddings")
    sha256: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the weights, checked on download"
    )
    architecture: Architecture | None = Field(
        None, description="Sizes the KV cache for placement; without it, estimated from the size"
    )

    @model_validator(mode="before")
    @classmethod
    def _engine_for_format(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("engine") is None and "format" in data:
            data = {**data, "engine": default_engine(str(data["format"]))}
        return data

    @model_validator(mode="after")
    def _fits(self) -> "ModelCreate":
        facts = ENGINES[self.engine]
        if self.format not in facts.formats:
            raise ValueError(
                f"{self.engine} serves {' and '.join(facts.formats)} models, not {self.format}"
            )
        repository = FORMATS[self.format].repository
        if self.source.startswith(sources.HF_PREFIX):
            whole = sources.parse_hf(self.source).path is None
            if whole != repository:
                raise ValueError(
                    f"a {self.format} model's source is "
                    + (
                        "a whole repository, hf://OWNER/REPO[@REVISION]"
                        if repository
                        else "one file, hf://OWNER/REPO/PATH[@REVISION]"
                    )
                )
        elif repository and sources.is_remote(self.source):
            raise ValueError(
                f"a {self.format} model is a repository: hf://OWNER/REPO[@REVISION], or a "
                "folder on the nodes, not one URL"
            )
        if repository and self.sha256 is not None:
            raise ValueError(
                "sha256 checks one file; pin a repository with a commit as its @REVISION"
            )
        return self


class ModelOut(Out):
    id: str
    name: str
    source: str
    format: str
    engine: str
    size_bytes: int
    context_length: int
    task: Task = "generate"
    sha256: str | None = None
    architecture: Architecture | None = None
    created_at: datetime
