from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from hashgrid.contracts.api.common import Out
from hashgrid.contracts.bounds import INT64_MAX, text

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
        description="Path of the weights on the nodes"
    )
    format: Literal["gguf"] = "gguf"
    engine: Literal["llamacpp"] = "llamacpp"
    size_bytes: int = Field(gt=0, le=INT64_MAX, description="Size of the weights, for placement")
    context_length: int = Field(2048, ge=16, le=1_048_576)
    task: Task = Field("generate", description="generate: chat and completions; embed: embeddings")
    sha256: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the weights, checked on download"
    )
    architecture: Architecture | None = Field(
        None, description="Sizes the KV cache for placement; without it, estimated from the size"
    )


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
