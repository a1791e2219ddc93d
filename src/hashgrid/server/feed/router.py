from fastapi import APIRouter, Request

from hashgrid.contracts.gateway import DemandReport, GatewayView, UsageAck, UsageBatch
from hashgrid.contracts.spotchecks import SpotCheckAck, SpotCheckBatch
from hashgrid.server.feed import service
from hashgrid.server.params import After, Wait
from hashgrid.server.policy import Caller
from hashgrid.server.reliability import service as reliability
from hashgrid.server.state import Session, State
from hashgrid.server.usage import service as usage

router = APIRouter(prefix="/api/v1/gateway", tags=["gateway feed"])


@router.get("/view")
async def gateway_view(
    session: Session,
    state: State,
    request: Request,
    caller: Caller,
    after: After = 0,
    wait: Wait = 0,
) -> GatewayView:
    """The routing table and key list, answered when newer than `after` (a long poll), and
    when `wait` ends in any case, with each replica's engine load as last reported."""
    await session.close()  # hold no database connection while the poll waits
    revision = await state.changes.wait_newer(after, min(wait, state.settings.long_poll_max_s))
    views = service.views(request)
    return await views.view(session, revision, state.loads, state.spend)


@router.post("/usage")
async def post_usage(body: UsageBatch, session: Session, state: State, gateway: Caller) -> UsageAck:
    """Store usage records; a record whose request id is stored already is skipped, one that
    is not a valid `UsageRecord` is set aside (`GET /api/v1/usage/rejected`). The ack's
    `spend_seq` is the first view `spend.seq` whose figures hold this batch."""
    return await usage.store(
        session, body.records, gateway.credential_id, state.spend, state.summaries
    )


@router.post("/demand", status_code=204)
async def post_demand(body: DemandReport, state: State, caller: Caller) -> None:
    """A gateway's requests in flight and held per deployment: what the autoscaler reads.
    Kept in memory; it replaces the gateway's report before."""
    state.demand.record(body)


@router.post("/spot-checks")
async def post_spot_checks(
    body: SpotCheckBatch, session: Session, state: State, gateway: Caller
) -> SpotCheckAck:
    """Store spot-check results (each once by its `check_id`); a node whose latest checks
    fail too often is quarantined (docs/gateway.md, "Spot-checks")."""
    settings = state.settings
    rule = reliability.QuarantineRule(settings.quarantine_mismatches, settings.quarantine_window)
    return await reliability.store_checks(
        session, body.results, gateway.credential_id, rule, state.changes
    )
