"""Hour accounting: each pass moves contracts along with the clock (pending -> active ->
ended) and samples every active contract's replicas into the hour's `contract_hours` row.

A sample counts, per node, the contract's replicas that gateways route to (ready, on a ready
node that is not draining), those the node let down (failed; ready on a lost or draining node;
lost with their node this hour) and those starting; the pure `billing.contracts.observe` folds
it into the hour, charging a missing replica to the node that let it down. Passes come every
`contract_sample_s` (and after every change), so a replica down for less than that may go
unseen: the SLA is watched at that grain.

Placement keeps a contract's replicas from a lead before its start; when the set of contracts
that reserve replicas changes (one enters its lead, starts, ends), the pass bumps the revision,
so placement and the gateways' view see it at once.
"""

from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hashgrid.billing.contracts import Sample, due_status, hour_of, observe
from hashgrid.contracts.states import (
    ACTIVE_REPLICA,
    ContractStatus,
    NodeStatus,
    ReplicaStatus,
    contract_can_move,
)
from hashgrid.server.changes import Changes
from hashgrid.server.contracts import service
from hashgrid.server.contracts.records import hour_of_row, store
from hashgrid.server.contracts.tables import ComputeContract, ContractHour
from hashgrid.server.db.base import utcnow
from hashgrid.server.deployments.tables import Replica
from hashgrid.server.nodes.tables import Node


class ContractHours:
    name = "contract-hours"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        changes: Changes,
        lead: timedelta,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._changes = changes
        self._lead = lead
        self._clock = clock
        self._reserving: frozenset[str] | None = None  # as the last pass found them

    async def reconcile(self) -> None:
        now = self._clock()
        async with self._sessions() as session:
            live = await service.live(session)
            moved = False
            for contract in live:
                current = ContractStatus(contract.status)
                due = due_status(current, contract.starts_at, contract.ends_at, now)
                if due != current:
                    assert contract_can_move(current, due)
                    contract.status = due
                    moved = True
            active = [c for c in live if c.status == ContractStatus.ACTIVE]
            await self._sample(session, active, now)
            await session.commit()
        reserving = frozenset(c.id for c in live if service.reserves(c, now, self._lead))
        if moved or reserving != self._reserving:
            self._reserving = reserving
            await self._changes.bump()

    async def _sample(
        self, session: AsyncSession, active: list[ComputeContract], now: datetime
    ) -> None:
        """Count each active contract's replicas now into this hour's row."""
        if not active:
            return
        ids = [c.id for c in active]
        hour = hour_of(now)
        replicas = await session.execute(
            select(
                Replica.contract_id,
                Replica.node_id,
                Replica.status,
                Node.status,
                Node.drain_deadline,
            )
            .join(Node, Replica.node_id == Node.id)
            .where(
                Replica.contract_id.in_(ids),
                or_(
                    Replica.status.in_(ACTIVE_REPLICA),
                    (Replica.status == ReplicaStatus.LOST) & (Replica.updated_at >= hour),
                ),
            )
        )
        counts: dict[str, defaultdict[str, Counter[str]]] = {
            kind: defaultdict(Counter) for kind in ("ready", "down", "starting")
        }
        for contract_id, node_id, status, node_status, drain_deadline in replicas:
            assert contract_id is not None  # selected by it
            serves = node_status == NodeStatus.READY and drain_deadline is None
            counts[_kind(status, serves)][contract_id][node_id] += 1
        rows = {
            row.contract_id: row
            for row in await session.scalars(
                select(ContractHour).where(
                    ContractHour.hour == hour, ContractHour.contract_id.in_(ids)
                )
            )
        }
        for c in active:
            row = rows.get(c.id)
            before = hour_of_row(row) if row is not None else None
            sample = Sample(*(counts[kind][c.id] for kind in ("ready", "down", "starting")))
            after = observe(before, hour, c.replicas, sample)
            if row is None:
                row = ContractHour(contract_id=c.id, hour=hour)
                session.add(row)
            store(row, after)


def _kind(status: str, node_serves: bool) -> str:
    """How a sample counts a replica: ready when the gateways' view routes to it (ready, on a
    ready node not draining: server/feed/service.py), starting before it was ever ready, else
    down (its node let it down)."""
    if status in (ReplicaStatus.SCHEDULED, ReplicaStatus.STARTING):
        return "starting"
    return "ready" if status == ReplicaStatus.READY and node_serves else "down"
