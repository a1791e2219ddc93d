"""What the control plane tells gateways, and what gateways send back.

`GET /api/v1/gateway/view?after=REV&wait=S` long-polls the `GatewayView`; it answers at once when
the view is newer than REV, and after S seconds in any case. Every answer carries the engine load
each replica's agent last reported (while fresh), so a gateway that polls every few seconds sees
loads that recent although the revision does not move for them. `POST /api/v1/gateway/usage`
takes a `UsageBatch`; records are idempotent by `request_id`, so a gateway may resend a batch
after any failure. The server checks each record against `UsageRecord` on its own: it stores the
valid ones, sets the others aside for an admin to read, and acknowledges the whole batch, so one
bad record never holds up the records behind it (see docs/metering.md).
`POST /api/v1/gateway/demand` takes a `DemandReport` every second or so, and at once when a
request starts waiting for a model with no ready replica: autoscaling's input.

Limits and budgets: each key carries its own `Limits`, and `customers` the limits of every
customer that has some. `spend` is what the control plane has stored of this month's spend for
every key and customer with a budget; its `seq` grows with each stored batch of usage, and each
`UsageAck` says the `seq` that holds the batch, so a gateway knows when its own spend, not yet
in `spend`, has arrived there (see `gateway/spend.py`).
"""

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, Field, JsonValue

from hashgrid.contracts.bounds import Count32, Finite, text
from hashgrid.contracts.states import SitePowerState

# The widths of the `usage_records` columns (server/usage/tables.py): what `UsageRecord` accepts
# and what the gateway cuts client-given strings to before it spools them.
REQUEST_ID_LEN = 100
CLIENT_REQUEST_ID_LEN = 200
ID_LEN = 32  # key, customer, replica and node ids
MODEL_LEN = 200
ENDPOINT_LEN = 64
SITE_LEN = 100


class RouteReplica(BaseModel):
    replica_id: str
    # Where the engine listens: on its node's loopback for "tunnel" replicas (for operators to
    # read; the gateway never connects to it), the URL an admin registered for "direct" ones.
    endpoint: str
    node_id: str  # "external": an endpoint run outside hashgrid (its deployment's id is the id)
    # "tunnel": reached only down the tunnel its node opened to the gateway (`gateway/tunnel.py`);
    # "direct": an external endpoint, called at `endpoint`.
    via: Literal["tunnel", "direct"] = "direct"
    site: str
    region: str
    # The engine's own load as its agent last reported it; None when unknown (llama-cpp-python
    # reports none, a scrape failed, or the report is stale).
    running: int | None = None
    waiting: int | None = None
    kv_cache_usage: float | None = None
    # The customer a compute contract in force reserves it for (None: on demand): that
    # customer's requests go to it first, others' only while that customer has nothing in
    # flight on the model at the gateway (`routing/reservations.py`).
    holder: str | None = None
    # Its node's site is the platform's own: its answers are the reference spot-checks replay
    # other replicas' on (`gateway/spotcheck.py`).
    trusted: bool = False
    # Its node's reliability over the last day, in [0, 1] (`capacity/score.py`); None: not yet
    # scored. The router weighs replicas by it.
    score: float | None = None
    # Its node's capacity class (`capacity/verdict.py`): two replicas of one deployment on the
    # same class answer a greedy request token for token, so a spot-check compares them exactly.
    capacity_class: str | None = None


class RouteSite(BaseModel):
    """A site as routing needs it: where it is (latency from the client's country) and whether
    its power state lets it take traffic."""

    name: str
    region: str
    country: str  # ISO 3166-1 alpha-2
    power_state: SitePowerState = SitePowerState.ACTIVE


class RoutedModel(BaseModel):
    """A model that has a deployment, with the replicas ready to serve it (maybe none)."""

    name: str
    deployment: str
    replicas: list[RouteReplica]
    task: str = "generate"  # "generate": chat and completions; "embed": embeddings
    # 0: the deployment may never have a replica, so a request waits for none (see
    # `gateway/proxy.py`: requests for a model with no ready replica wait for a while).
    max_replicas: int = 1
    # The price book's prices now, in pico-dollars per token (`hashgrid.billing`): what a
    # gateway reserves and counts against budgets. The server prices each record itself.
    price_prompt: int = 0
    price_cached: int = 0
    price_completion: int = 0
    # Prompt plus completion tokens a request can take at most: bounds a worst-case cost.
    context_length: int | None = None
    # The customer whose keys alone may call it (a private deployment); None: public, every
    # customer's keys may. A key that may not call it is answered as for a model that is not.
    customer_id: str | None = None


class Limits(BaseModel):
    """A key's or a customer's limits; None: no limit of that kind."""

    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # tokens (prompt + completion) per minute
    # Spend per billing period (the UTC calendar month), in micro-dollars.
    monthly_budget_micros: int | None = None


class KeyEntry(BaseModel):
    key_id: str
    key_hash: str
    customer_id: str
    # Where the key's clients are (ISO 3166-1 alpha-2), for routing; None: unknown. A request's
    # `x-hashgrid-client-country` header overrides it.
    country: str | None = None
    limits: Limits = Limits()


class CustomerEntry(BaseModel):
    customer_id: str
    limits: Limits


class SpendReport(BaseModel):
    """Stored spend this `period` (UTC month, `YYYY-MM`) of keys and customers with budgets,
    in micro-dollars (each one's exact cost summed, then rounded up)."""

    seq: int = 0
    period: str = ""
    keys: dict[str, int] = {}  # micro-dollars by key id; absent: nothing spent
    customers: dict[str, int] = {}  # micro-dollars by customer id


class RouteNode(BaseModel):
    """A node that may open a tunnel to gateways: the digest of its current credential."""

    node_id: str
    credential_hash: str


class GatewayView(BaseModel):
    revision: int
    models: list[RoutedModel]
    keys: list[KeyEntry]
    # Every node whose credential is valid: a tunnel authenticates against these, and a
    # node's tunnel closes when it leaves the list (revoked, rotated, deleted).
    nodes: list[RouteNode] = []
    # Every site that holds a replica in `models` (older servers send none).
    sites: list[RouteSite] = []
    customers: list[CustomerEntry] = []  # those with limits; a customer not here has none
    spend: SpendReport = SpendReport()


class UsageRecord(BaseModel):
    """One request as metered; every field within what its `usage_records` column holds."""

    # The gateway's own id, unique per request: what makes a record idempotent.
    request_id: Annotated[str, text(REQUEST_ID_LEN, 1)]
    # The client's `x-request-id`, echoed back to it.
    client_request_id: Annotated[str, text(CLIENT_REQUEST_ID_LEN)] | None = None
    key_id: Annotated[str, text(ID_LEN, 1)]
    customer_id: Annotated[str, text(ID_LEN, 1)]
    model: Annotated[str, text(MODEL_LEN)]
    endpoint: Annotated[str, text(ENDPOINT_LEN, 1)]  # the API route, e.g. /v1/chat/completions
    replica_id: Annotated[str, text(ID_LEN)] | None
    node_id: Annotated[str, text(ID_LEN)] | None
    site: Annotated[str, text(SITE_LEN)] | None
    status_code: int = Field(ge=100, le=599)
    prompt_tokens: Count32
    completion_tokens: Count32
    # Of the prompt tokens, those the engine served from its prefix cache (where it says so:
    # OpenAI's `usage.prompt_tokens_details.cached_tokens`); priced at the cached rate.
    cached_tokens: Count32 = 0
    ttft_ms: Annotated[Finite, Field(ge=0)] | None
    duration_ms: Annotated[Finite, Field(ge=0)]
    started_at: AwareDatetime
    # The node reported token counts the gateway did not trust (negative, not whole, or beyond
    # any context): the counts here are the gateway's clamped ones.
    usage_clamped: bool = False


class ModelDemand(BaseModel):
    """One deployment's demand at one gateway: what autoscaling reads."""

    deployment: str  # its id
    in_flight: int = 0  # requests being answered now
    held: int = 0  # requests waiting because the model has no ready replica
    started: int = 0  # requests begun since the gateway's report before
    ttft_p90_ms: float | None = None  # of the requests that had their first byte since then


class DemandReport(BaseModel):
    """What one gateway sees of demand now; each report replaces that gateway's one before."""

    gateway: str  # the gateway process's own id, new at each start
    models: list[ModelDemand]
    # Where nodes dial this gateway's tunnel listener (wss://host:port/tunnel); None: it has
    # none, so nodes do not learn of it.
    tunnel_url: Annotated[str, text(500, 1)] | None = None


class UsageBatch(BaseModel):
    """Records as a gateway spooled them, each a `UsageRecord` (checked one by one)."""

    records: list[JsonValue] = Field(max_length=100_000)


class UsageAck(BaseModel):
    accepted: int  # records newly stored
    duplicates: int  # records already stored under the same request id
    rejected: int = 0  # records that are not valid `UsageRecord`s, set aside (not stored)
    spend_seq: int = 0  # the first `SpendReport.seq` whose figures hold this batch
