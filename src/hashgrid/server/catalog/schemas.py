from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from hashgrid.server.schemas_common import Out

ModelName = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
]


class ModelCreate(BaseModel):
    name: ModelName
    source: str = Field(min_length=1, description="Path of the weights on the nodes")
    format: Literal["gguf"] = "gguf"
    engine: Literal["llamacpp"] = "llamacpp"
    size_bytes: int = Field(gt=0, description="Size of the weights, for placement")
    context_length: int = Field(2048, ge=16, le=1_048_576)
    price_per_mtok_prompt: float = Field(
        0.0, ge=0, le=1e6, allow_inf_nan=False, description="USD per million prompt tokens"
    )
    price_per_mtok_completion: float = Field(
        0.0, ge=0, le=1e6, allow_inf_nan=False, description="USD per million completion tokens"
    )


class ModelPrices(BaseModel):
    model_config = ConfigDict(extra="forbid")

    price_per_mtok_prompt: float = Field(ge=0, le=1e6, allow_inf_nan=False)
    price_per_mtok_completion: float = Field(ge=0, le=1e6, allow_inf_nan=False)


class ModelOut(Out):
    id: str
    name: str
    source: str
    format: str
    engine: str
    size_bytes: int
    context_length: int
    price_per_mtok_prompt: float
    price_per_mtok_completion: float
    created_at: datetime
