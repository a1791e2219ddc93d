"""What gateways report of spot-checks: `POST /api/v1/gateway/spot-checks` takes a
`SpotCheckBatch`; each result is idempotent by its `check_id` (the gateway's own id), so a
gateway may resend a batch after any failure. The ack says how many were new and which nodes
the batch got quarantined (see docs/gateway.md, "Spot-checks").
"""

from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, Field

from hashgrid.contracts.bounds import text
from hashgrid.contracts.gateway import ID_LEN, MODEL_LEN, REQUEST_ID_LEN


class CheckMode(StrEnum):
    EXACT = "exact"  # same deployment on the same capacity class: greedy answers must be equal
    STATISTICAL = "statistical"  # different hardware: the answers must mostly agree


class SpotCheckResult(BaseModel):
    """One answer of an untrusted replica replayed on a trusted one, and how they compared."""

    check_id: Annotated[str, text(REQUEST_ID_LEN, 1)]
    request_id: Annotated[str, text(REQUEST_ID_LEN, 1)]  # the customer's request checked
    model: Annotated[str, text(MODEL_LEN)]
    node_id: Annotated[str, text(ID_LEN, 1)]  # the node whose answer was checked
    replica_id: Annotated[str, text(ID_LEN, 1)]
    reference_node_id: Annotated[str, text(ID_LEN, 1)]  # the trusted node that replayed it
    reference_replica_id: Annotated[str, text(ID_LEN, 1)]
    mode: CheckMode
    agreement: float = Field(ge=0.0, le=1.0)  # `capacity.agreement.Agreement.score`
    passed: bool
    checked_at: AwareDatetime


class SpotCheckBatch(BaseModel):
    results: list[SpotCheckResult] = Field(max_length=10_000)


class SpotCheckAck(BaseModel):
    accepted: int  # results newly stored
    duplicates: int  # results stored already under the same check id
    quarantined: list[str] = []  # node ids this batch's mismatches quarantined
