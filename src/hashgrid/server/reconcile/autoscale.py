"""Autoscaling: each pass sets the replica count of every autoscaled deployment from its demand.

Demand is what gateways report (`deployments/demand.py`) and engines report with heartbeats
(`deployments/loads.py`), both in memory; the decision is the pure `scheduler.autoscale`'s. A
changed count is written with an event saying why, and placement does the rest. What each
deployment needed lately is kept here, in memory: a control plane that restarts watches a whole
window again before it scales anything down.
"""

import time
from collections import Counter
from collections.abc import Callable

from sqlalchemy import select

from hashgrid.contracts.states import ACTIVE_REPLICA, ReplicaStatus
from hashgrid.scheduler.autoscale import ScaleHistory, ScalePolicy, decide
from hashgrid.server.deployments import events
from hashgrid.server.deployments.tables import Deployment, Replica
from hashgrid.server.state import ServerState


class AutoscaleReconciler:
    name = "autoscale"

    def __init__(self, state: ServerState, clock: Callable[[], float] = time.time) -> None:
        self._state = state
        self._clock = clock
        self._histories: dict[str, ScaleHistory] = {}

    async def reconcile(self) -> None:
        state = self._state
        changed = False
        async with state.sessions() as session:
            autoscaled = (
                await session.scalars(
                    select(Deployment).where(
                        Deployment.min_replicas != Deployment.max_replicas,
                        Deployment.endpoint.is_(None),  # an external one is never scaled
                    )
                )
            ).all()
            ids = [d.id for d in autoscaled]
            self._histories = {i: self._histories.get(i) or ScaleHistory() for i in ids}
            if not autoscaled:
                return
            replicas = await session.execute(
                select(Replica.deployment_id, Replica.node_id, Replica.id, Replica.status).where(
                    Replica.deployment_id.in_(ids), Replica.status.in_(ACTIVE_REPLICA)
                )
            )
            ready: Counter[str] = Counter()
            engine_load: Counter[str] = Counter()
            for deployment_id, node_id, replica_id, status in replicas:
                if status != ReplicaStatus.READY:
                    continue
                ready[deployment_id] += 1
                load = state.loads.get(node_id, replica_id)
                if load is not None:
                    engine_load[deployment_id] += (load.running or 0) + (load.waiting or 0)
            now = self._clock()
            for d in autoscaled:
                policy = ScalePolicy(
                    d.min_replicas,
                    d.max_replicas,
                    target_load=d.target_load,
                    ttft_target_ms=d.ttft_target_ms,
                    idle_s=d.idle_s,
                    scale_down_delay_s=state.settings.autoscale_down_delay_s,
                )
                demand = state.demand.of(d.id, engine_load[d.id])
                decision = decide(
                    policy, d.replicas, ready[d.id], demand, now, self._histories[d.id]
                )
                if decision.replicas != d.replicas:
                    events.record(
                        session,
                        d.id,
                        f"scaled {d.replicas} -> {decision.replicas}: {decision.reason}",
                    )
                    d.replicas = decision.replicas
                    changed = True
            if changed:
                await session.commit()
        if changed:
            await state.changes.bump()
