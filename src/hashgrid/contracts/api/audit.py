from datetime import datetime

from hashgrid.contracts.api.common import Out


class AuditEntryOut(Out):
    id: str
    at: datetime
    organization_id: str | None
    actor: str  # "user:<id>", "token:<id>" (an admin token) or "anonymous"
    action: str  # the operation, as the OpenAPI document names it
    method: str
    path: str
    touched: dict[str, list[str]]  # the ids of the rows the change wrote, by table
