"""Placement: snapshot the database, let the pure scheduler decide, write its plan."""

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hashgrid.contracts.states import (
    ACTIVE_REPLICA,
    NodeAdmission,
    NodePower,
    NodeStatus,
    ReplicaStatus,
)
from hashgrid.scheduler import (
    DeploymentView,
    GpuView,
    NodeView,
    Plan,
    PowerState,
    ReplicaView,
    Reservation,
    SiteView,
    Snapshot,
    Tier,
    plan,
)
from hashgrid.server.catalog.tables import CatalogModel
from hashgrid.server.changes import Changes
from hashgrid.server.contracts.service import reservations
from hashgrid.server.db.base import new_id, utcnow
from hashgrid.server.deployments import events
from hashgrid.server.deployments.sizing import engine_of, gpu_only, replica_memory
from hashgrid.server.deployments.tables import Deployment, Replica
from hashgrid.server.nodes.service import stored_gpus
from hashgrid.server.nodes.tables import Node
from hashgrid.server.power import standby
from hashgrid.server.reliability import service as reliability
from hashgrid.server.sites.tables import Site

AGE_OUT_EVERY_S = 3600.0

log = structlog.get_logger("hashgrid.server.placement")


class PlacementReconciler:
    name = "placement"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        changes: Changes,
        retry_after_s: float,
        contract_lead_s: float = 600.0,
    ) -> None:
        self._sessions = sessions
        self._changes = changes
        self._retry_after = timedelta(seconds=retry_after_s)
        # Compute contracts' replicas are placed this long before their term starts.
        self._contract_lead = timedelta(seconds=contract_lead_s)
        # The revision of a pass that found nothing to do and nothing waiting on the clock.
        self._settled_at: int | None = None
        self._aged_out_at = time.monotonic()  # when old deployment events were last deleted

    async def reconcile(self) -> None:
        """One pass; skipped when nothing changed since a pass that settled everything.

        The plan depends on the database and, through the retry window of failed replicas, on
        the clock. With no failed replica and nothing pending, the same revision gives the same
        empty plan: at thousands of nodes, reading them all every few seconds for nothing held
        the event loop long enough to show in every heartbeat's latency.
        """
        if time.monotonic() - self._aged_out_at > AGE_OUT_EVERY_S:
            async with self._sessions() as session:
                await events.age_out(session)
                await session.commit()
            self._aged_out_at = time.monotonic()
        revision = self._changes.revision  # before reading: a change during the pass re-runs
        if revision == self._settled_at:
            return
        async with self._sessions() as session:
            snapshot, specs = await self._snapshot(session)
            decided = plan(snapshot)
            changed = await self._apply(session, decided, specs)
            if decided.unplaced:
                changed |= await self._wake_for(session, snapshot, decided)
        if changed:
            await self._changes.bump()
        waits_on_clock = bool(snapshot.cooling or decided.unplaced)
        self._settled_at = None if changed or waits_on_clock else revision

    async def _wake_for(self, session: AsyncSession, snapshot: Snapshot, decided: Plan) -> bool:
        """Wake the sleeping nodes that replicas placed nowhere would go to (power/standby.py)."""
        asleep = await standby.sleeping(session)
        pending = [u.deployment_id for u in decided.unplaced]
        woken = await standby.wake(session, standby.wanted_awake(snapshot, asleep, pending))
        if woken:
            log.info("waking nodes for pending replicas", nodes=woken)
        return bool(woken)

    async def _snapshot(self, session: AsyncSession) -> tuple[Snapshot, dict[str, "_Spec"]]:
        sites = (await session.scalars(select(Site))).all()
        nodes = (await session.scalars(select(Node))).all()
        scores = await reliability.scores(session, reliability.NODE, (n.id for n in nodes))
        # The inner join leaves out external deployments (no catalog model): nothing to place.
        deployments = (
            await session.execute(
                select(Deployment, CatalogModel).join(
                    CatalogModel, Deployment.model_id == CatalogModel.id
                )
            )
        ).all()
        specs = {
            d.id: _Spec(replica_memory(d, m).total_bytes, d.generation, m.id, engine_of(d, m))
            for d, m in deployments
        }
        active = (
            await session.scalars(select(Replica).where(Replica.status.in_(ACTIVE_REPLICA)))
        ).all()
        # A failed replica stays where it is while its agent restarts it; one still failed
        # after the retry window is given up on there (its agent's backoff outgrew the window).
        now = utcnow()
        given_up_before = now - self._retry_after
        reserved = await reservations(session, now, self._contract_lead)
        failed = [r for r in active if r.status == ReplicaStatus.FAILED]
        snapshot = Snapshot(
            # Curtailments set the stored state (server/power/): flex leaves a curtailed site.
            sites=tuple(SiteView(s.id, s.region, PowerState(s.power_state)) for s in sites),
            nodes=tuple(
                node_view(n, scores[n.id].score if n.id in scores else None) for n in nodes
            ),
            deployments=tuple(
                deployment_view(d, m, specs[d.id].memory_bytes, reserved.get(d.id, ()))
                for d, m in deployments
            ),
            replicas=tuple(
                ReplicaView(
                    r.id,
                    r.deployment_id,
                    r.node_id,
                    r.memory_bytes,
                    tuple(r.gpus or ()),
                    r.status == ReplicaStatus.READY,
                    failed_too_long=r.status == ReplicaStatus.FAILED
                    and r.updated_at <= given_up_before,
                    generation=r.generation,
                    contract_id=r.contract_id,
                )
                for r in active
            ),
            cooling=frozenset((r.deployment_id, r.node_id) for r in failed),
        )
        return snapshot, specs

    async def _apply(self, session: AsyncSession, decided: Plan, specs: dict[str, "_Spec"]) -> bool:
        now = utcnow()
        for place in decided.places:
            spec = specs[place.deployment_id]
            placed = Replica(
                id=new_id(),
                deployment_id=place.deployment_id,
                node_id=place.node_id,
                memory_bytes=spec.memory_bytes,
                gpus=list(place.gpus),
                status=ReplicaStatus.SCHEDULED,
                generation=spec.generation,
                model_id=spec.model_id,
                engine=spec.engine,
                contract_id=place.contract_id,
            )
            session.add(placed)
            on = f"GPUs {','.join(map(str, place.gpus))}" if place.gpus else "CPU"
            held = f", reserved for contract {place.contract_id[:8]}" if place.contract_id else ""
            events.record(
                session,
                place.deployment_id,
                f"replica {placed.id[:8]} placed on node {place.node_id[:8]} ({on}{held})",
            )
        for remove in decided.removes:
            replica = await session.get(Replica, remove.replica_id)
            if replica is None:
                continue
            # The failure that made placement move a replica stays readable after the move.
            replica.reason = (
                f"{remove.reason}; last failure: {replica.reason}"
                if replica.status == ReplicaStatus.FAILED and replica.reason
                else remove.reason
            )
            # A replica its agent never acted on has no engine to stop.
            replica.status = (
                ReplicaStatus.STOPPED
                if replica.status == ReplicaStatus.SCHEDULED
                else ReplicaStatus.STOPPING
            )
            replica.updated_at = now
            events.record(
                session, replica.deployment_id, f"replica {replica.id[:8]} removed: {remove.reason}"
            )
        pending: defaultdict[str, list[str]] = defaultdict(list)
        for u in decided.unplaced:
            kind = "reserved replica(s)" if u.contract_id else "replica(s)"
            pending[u.deployment_id].append(f"{u.count} {kind} pending: {u.reason}")
        conditions = {d: "; ".join(said) for d, said in pending.items()}
        conditions_changed = False
        # External deployments' conditions are the endpoint reconciler's (reconcile/endpoints.py).
        by_nodes = select(Deployment).where(Deployment.endpoint.is_(None))
        for deployment in (await session.scalars(by_nodes)).all():
            condition = conditions.get(deployment.id)
            if deployment.condition != condition:
                events.record(session, deployment.id, condition or "every replica placed")
                deployment.condition = condition
                conditions_changed = True
        await session.commit()
        return not decided.empty or conditions_changed


@dataclass(frozen=True, slots=True)
class _Spec:
    """What a new replica of a deployment is placed with, as the deployment is now."""

    memory_bytes: int
    generation: int
    model_id: str
    engine: str


def node_view(node: Node, score: float | None = None) -> NodeView:
    """A node as the scheduler sees it, from its stored fingerprint and holdings, with its
    reliability `score` as last computed (`reconcile/scores.py`)."""
    fingerprint: Any = node.fingerprint if isinstance(node.fingerprint, dict) else {}
    ram = fingerprint.get("memory_total_bytes")
    return NodeView(
        node.id,
        node.site_id,
        ram if isinstance(ram, int) else node.capacity_bytes,
        tuple(
            GpuView(g.index, g.name, g.memory_total_bytes, g.quarantined)
            for g in stored_gpus(fingerprint)
        ),
        schedulable=node.status == NodeStatus.READY
        and node.drain_deadline is None
        and node.power == NodePower.ON,
        cordoned=node.cordoned,
        holds=holdings_of(node.holdings),
        admitted=node.admission == NodeAdmission.ADMITTED,
        score=score,
    )


def holdings_of(raw: Any) -> frozenset[str] | None:
    """Model sources a node's store holds, as its agent reported them; None: never reported."""
    if not isinstance(raw, list):
        return None
    return frozenset(
        h["source"] for h in raw if isinstance(h, dict) and isinstance(h.get("source"), str)
    )


def deployment_view(
    deployment: Deployment,
    model: CatalogModel,
    memory: int,
    reservations: tuple[Reservation, ...] = (),
) -> DeploymentView:
    engine = engine_of(deployment, model)
    return DeploymentView(
        deployment.id,
        deployment.replicas,
        memory,
        tensor_parallel_size=deployment.tensor_parallel_size,
        gpu_only=gpu_only(engine),
        gpu_type=deployment.gpu_type,
        regions=frozenset(deployment.regions),
        tier=Tier.FLEX if deployment.tier == Tier.FLEX else Tier.FIRM,
        source=model.source,
        generation=deployment.generation,
        reservations=reservations,
    )
