from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from hashgrid.contracts.api.common import Name, Out, ReliabilityOut
from hashgrid.contracts.bounds import NO_NUL

Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Region = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL)]
# The largest mining sites draw a few hundred MW; 100 GW leaves room and keeps plans finite.
MAX_SITE_MW = 100_000


class SiteCreate(BaseModel):
    name: Name
    region: Region
    country: Country = Field(description="ISO 3166-1 alpha-2 code, e.g. US")
    power_mw: float = Field(
        ge=0,
        le=MAX_SITE_MW,
        allow_inf_nan=False,
        description="Contracted power budget in megawatts",
    )
    operator: Name | None = Field(None, description="Operator organization; default: platform")


class SiteOut(Out):
    id: str
    name: str
    region: str
    country: str
    power_mw: float
    created_at: datetime
    # Its nodes' reliability over the last day, counted together; None until first scored.
    reliability: ReliabilityOut | None = None


class JoinTokenCreate(BaseModel):
    ttl_s: int = Field(86400, ge=60, le=30 * 86400, description="Seconds until it expires")


class JoinTokenCreated(BaseModel):
    site: str
    token: str  # one-time; shown once
    expires_at: datetime
