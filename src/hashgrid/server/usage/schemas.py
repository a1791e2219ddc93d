from datetime import datetime

from hashgrid.server.schemas_common import Out


class UsageOut(Out):
    request_id: str
    key_id: str
    customer_id: str
    model: str
    endpoint: str
    replica_id: str | None
    node_id: str | None
    site: str | None
    status_code: int
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float | None
    duration_ms: float
    started_at: datetime
