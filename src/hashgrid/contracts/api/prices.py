"""The price book's API shapes: USD per million tokens as decimals (JSON strings), never floats;
the server keeps them as integer pico-dollars per token (`hashgrid.billing`)."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from hashgrid.contracts.api.catalog import ModelName
from hashgrid.contracts.api.common import AwareMoment, Name
from hashgrid.contracts.api.deployments import Tier

UsdPerMtok = Annotated[
    Decimal,
    Field(ge=0, le=10_000, decimal_places=6, allow_inf_nan=False, description="USD per 1M tokens"),
]
Percent = Annotated[Decimal, Field(gt=0, le=100, decimal_places=2, allow_inf_nan=False)]


class PriceCreate(BaseModel):
    """A model's prices from `effective_from` on (default: now), for one tier or both."""

    model_config = ConfigDict(extra="forbid")

    model: ModelName = Field(description="The name clients call (a deployment's name)")
    tier: Tier | None = Field(None, description="firm or flex; null: both")
    prompt: UsdPerMtok
    completion: UsdPerMtok
    cached: UsdPerMtok | None = Field(
        None, description="Prompt tokens the engine served from its cache; null: as prompt"
    )
    effective_from: AwareMoment | None = Field(
        None,
        description="Default now. A past moment prices only records that had no price: a "
        "record keeps the price it was charged",
    )


class PriceOut(BaseModel):
    model: str
    tier: Tier
    effective_from: datetime
    prompt: Decimal
    cached: Decimal
    completion: Decimal


class DiscountCreate(BaseModel):
    """A customer's discount on every unit price, for one model or all, from a moment on."""

    model_config = ConfigDict(extra="forbid")

    customer: Name
    percent: Percent
    model: ModelName | None = Field(None, description="null: every model")
    effective_from: AwareMoment | None = Field(None, description="Default now")


class DiscountOut(BaseModel):
    customer: str
    model: str | None
    percent: Decimal
    effective_from: datetime
