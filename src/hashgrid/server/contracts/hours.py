"""Hour accounting: each pass moves contracts along with the clock (pending -> active ->
ended) and samples every active contract's replicas into the hour's `contract_hours` row.

A sample counts, per node, the contract's replicas that gateways route to (ready, on a ready
node that is not draining) and those placed but not (starting, failed, on a silent node); the
pure `billing.contracts.observe` folds it into the hour. Passes come every
`contract_sample_s` (and after every change), so a replica down for less than that may go
unseen: the SLA is watched at that grain.

Placement keeps a contract's replicas from a lead before its start; when the set of contracts
that reserve replicas changes (one enters its lead, starts, ends), the pass bumps the revision,
so placement and the gateways' view see it at once.
"""

from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
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
        replicas = await session.execute(
            select(
                Replica.contract_id,
                Replica.node_id,
                Replica.status,
                Node.status,
                Node.drain_deadline,
            )
            .join(Node, Replica.node_id == Node.id)
            .where(Replica.contract_id.in_(ids), Replica.status.in_(ACTIVE_REPLICA))
        )
        ready: defaultdict[str, Counter[str]] = defaultdict(Counter)
        placed: defaultdict[str, Counter[str]] = defaultdict(Counter)
        for contract_id, node_id, status, node_status, drain_deadline in replicas:
            assert contract_id is not None  # selected by it
            # What the gateways' view routes to (server/feed/service.py).
            routed = (
                status == ReplicaStatus.READY
                and node_status == NodeStatus.READY
                and drain_deadline is None
            )
            (ready if routed else placed)[contract_id][node_id] += 1
        hour = hour_of(now)
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
            after = observe(before, hour, c.replicas, Sample(ready[c.id], placed[c.id]))
            if row is None:
                row = ContractHour(contract_id=c.id, hour=hour)
                session.add(row)
            store(row, after)
