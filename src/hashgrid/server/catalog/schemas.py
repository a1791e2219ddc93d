from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

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


class ModelOut(Out):
    id: str
    name: str
    source: str
    format: str
    engine: str
    size_bytes: int
    context_length: int
    created_at: datetime
