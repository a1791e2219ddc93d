"""What one control-plane process holds while it runs, handed to routes through dependencies."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hashgrid.server.audit.recorder import watch
from hashgrid.server.billing.providers import LineProvider
from hashgrid.server.changes import Changes
from hashgrid.server.deployments.demand import GatewayDemand
from hashgrid.server.deployments.loads import ReplicaLoads
from hashgrid.server.nodes.liveness import Liveness
from hashgrid.server.settings import ServerSettings
from hashgrid.server.usage.closed_days import ClosedDays
from hashgrid.server.usage.spend import Spend


@dataclass
class ServerState:
    settings: ServerSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    changes: Changes
    liveness: Liveness
    spend: Spend  # this month's spend per key and customer, from stored usage
    summaries: ClosedDays  # usage sums of closed days, per summary shape
    loads: ReplicaLoads  # engine loads, as the nodes' heartbeats last reported them
    demand: GatewayDemand  # requests in flight and held, as the gateways last reported them
    # Where invoice lines other than usage come from (compute contracts): billing/providers.py
    line_providers: tuple[LineProvider, ...] = ()


def get_state(request: Request) -> ServerState:
    state = request.app.state.hashgrid
    assert isinstance(state, ServerState)
    return state


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's database session; what it commits is written to the audit log."""
    async with get_state(request).sessions() as session:
        watch(session, request)
        yield session


State = Annotated[ServerState, Depends(get_state)]
Session = Annotated[AsyncSession, Depends(get_session)]
