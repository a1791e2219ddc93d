"""The control plane's side of the agent protocol."""

import asyncio
import time
from typing import Any

import structlog
from fastapi import Request
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.common.tls import split_join_token
from hashgrid.contracts.agent import (
    Assignment,
    Assignments,
    Fingerprint,
    Holding,
    JoinRequest,
    JoinResponse,
    ModelSpec,
    Verification,
    VerificationReport,
)
from hashgrid.contracts.states import ACTIVE_REPLICA, NodeAdmission, NodeStatus
from hashgrid.server.auth import per_state
from hashgrid.server.catalog.tables import CatalogModel
from hashgrid.server.changes import Changes
from hashgrid.server.deployments.sizing import engine_of, gpu_memory_fraction, gpu_only
from hashgrid.server.deployments.tables import Deployment, Replica
from hashgrid.server.errors import Unauthorized
from hashgrid.server.nodes import service as nodes
from hashgrid.server.nodes.tables import Node
from hashgrid.server.principal import NodePrincipal
from hashgrid.server.sites import service as sites
from hashgrid.server.sites.tables import Site
from hashgrid.server.state import ServerState

log = structlog.get_logger("hashgrid.server.agents")


def _stable(fingerprint: dict[str, Any]) -> dict[str, Any]:
    """The part of a fingerprint whose change is stored (as `nodes.update_fingerprint` judges)."""
    return nodes._stable(fingerprint)


class KnownNodes:
    """Each node's status and admission as the database last said, and its stored fingerprint,
    in memory.

    With it a heartbeat from a ready node whose fingerprint did not change runs no SQL at all.
    Statuses are read again, all in one query, once the change revision moved since the last
    read: whoever changes a node's status commits and then bumps the revision (the liveness
    reconciler, a revocation, a heartbeat bringing a node back), so an entry is never trusted
    past the bump that follows a change. A change this process makes itself is noted here at
    once and needs no read (`bumped`). Fingerprints and holdings are noted on first use; only
    heartbeats write them.
    """

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._status: dict[str, str] = {}
        self._admission: dict[str, str] = {}
        self._fingerprint: dict[str, dict[str, Any]] = {}
        self._holdings: dict[str, list[dict[str, Any]]] = {}
        self._revision: int | None = None
        self._reading = asyncio.Lock()

    async def refresh(self) -> None:
        """Read every node's status again if anything changed since the last read."""
        if self._revision == self._state.changes.revision:
            return
        async with self._reading:
            revision = self._state.changes.revision  # before the read: a later bump re-reads
            if self._revision == revision:
                return
            async with self._state.sessions() as session:
                rows = (await session.execute(select(Node.id, Node.status, Node.admission))).all()
            self._status = {node_id: status for node_id, status, _ in rows}
            self._admission = {node_id: admission for node_id, _, admission in rows}
            self._revision = revision

    def status(self, node_id: str) -> str | None:
        return self._status.get(node_id)

    def awaits_verification(self, node_id: str) -> bool:
        """Whether the node is pending admission, as last read (`set_admission` bumps)."""
        return self._admission.get(node_id) == NodeAdmission.PENDING

    def counts(self) -> dict[str, int]:
        """How many nodes are in each status."""
        out: dict[str, int] = {}
        for status in self._status.values():
            out[status] = out.get(status, 0) + 1
        return out

    def fingerprint_unchanged(self, node_id: str, stable: dict[str, Any]) -> bool:
        return self._fingerprint.get(node_id) == stable

    def holdings_unchanged(self, node_id: str, holdings: list[dict[str, Any]]) -> bool:
        return self._holdings.get(node_id) == holdings

    def note(
        self,
        node_id: str,
        status: str,
        stored_fingerprint: dict[str, Any],
        stored_holdings: list[dict[str, Any]] | None = None,
    ) -> None:
        """What this process just committed (or read) for `node_id`."""
        self._status[node_id] = status
        self._fingerprint[node_id] = _stable(stored_fingerprint)
        if stored_holdings is not None:
            self._holdings[node_id] = stored_holdings

    def bumped(self, revision: int) -> None:
        """This process bumped the revision to `revision` for a change it has noted.

        If no other bump came between the last read and this one, the view stays current.
        """
        if self._revision is not None and self._revision == revision - 1:
            self._revision = revision


def known_nodes(request: Request) -> KnownNodes:
    """This process's view of node statuses and fingerprints."""
    return per_state(request, "hashgrid_known_nodes", KnownNodes)


class AssignmentWaits:
    """Lets an assignments long poll sleep through changes that do not touch its node.

    Every change bumps the one revision. Were each held poll to wait on it, every change would
    wake all of them (over 100 ms of event loop at 2,000 polls), and answering each would cost
    two queries and a round trip per node: at a thousand agents one change (a node back from
    lost, a replica report) would answer a thousand polls at once and exhaust the database pool.
    Instead one watcher task waits for changes while polls are held, reads the active replicas
    of every node once per revision (one query) and wakes only the polls whose node's replicas
    differ from those of its last answer (the revision the agent passes back as `after`). A
    poll whose `after` is not its node's last answer (the first poll, or one after a server
    restart) answers on any change, as before. A poll whose wait ends with its node's replicas
    as they were gets its last answer again under the new revision, with no query.
    """

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._told: dict[str, tuple[frozenset[str], Assignments]] = {}
        self._active: tuple[int, dict[str, frozenset[str]]] | None = None
        self._reading = asyncio.Lock()
        self._held: dict[asyncio.Future[int], tuple[str, frozenset[str]]] = {}
        self._watcher: asyncio.Task[None] | None = None

    async def wait(
        self, node_id: str, after: int, within_s: float
    ) -> tuple[int, Assignments | None]:
        """Wait until `node_id`'s assignments may differ from its answer at `after`, or
        `within_s` passes. The revision to answer with, and the answer at `after` when it
        still holds (None: read the assignments)."""
        changes = self._state.changes
        told = self._told.get(node_id)
        if told is None or told[1].revision != after:
            return await changes.wait_newer(after, within_s), None
        replicas, answer = told
        deadline = time.monotonic() + within_s
        while True:  # changes since `after` that the watcher may have seen before this poll came
            revision = changes.revision
            if revision > after and await self._differ(node_id, replicas, revision):
                return revision, None
            if changes.revision == revision:
                break  # no await from here on: the watcher hears of every change after this one
        woken: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._held[woken] = (node_id, replicas)
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(revision), name="assignment-waits")
        try:
            return await asyncio.wait_for(woken, max(0.0, deadline - time.monotonic())), None
        except TimeoutError:
            pass
        finally:
            self._held.pop(woken, None)
        # The wait is over. Changes the watcher has not looked at yet are looked at here.
        now = changes.revision
        if now != revision and await self._differ(node_id, replicas, now):
            return now, None
        return now, answer

    async def _differ(self, node_id: str, replicas: frozenset[str], revision: int) -> bool:
        active = await self._active_replicas(revision)
        return active.get(node_id, frozenset()) != replicas

    async def _watch(self, seen: int) -> None:
        """While polls are held: on each change, wake those whose node's replicas changed."""
        changes = self._state.changes
        try:
            while self._held:
                revision = await changes.wait_newer(seen, 1.0)
                if revision <= seen:
                    continue
                active = await self._active_replicas(revision)
                for woken, (node_id, replicas) in list(self._held.items()):
                    if not woken.done() and active.get(node_id, frozenset()) != replicas:
                        woken.set_result(revision)
                seen = revision
        except Exception:
            log.exception("assignment watcher failed; answering every held poll")
            for woken in list(self._held):
                if not woken.done():
                    woken.set_result(changes.revision)
        finally:
            self._watcher = None

    def told(self, node_id: str, answer: Assignments) -> None:
        """What a poll of `node_id` was just answered."""
        self._told[node_id] = (frozenset(a.replica_id for a in answer.assignments), answer)

    async def _active_replicas(self, revision: int) -> dict[str, frozenset[str]]:
        """Each node's active replica ids, as of `revision` or later."""
        if self._active is not None and self._active[0] >= revision:
            return self._active[1]
        async with self._reading:
            if self._active is not None and self._active[0] >= revision:
                return self._active[1]
            as_of = self._state.changes.revision  # before the read: a later change re-reads
            async with self._state.sessions() as session:
                rows = await session.execute(
                    select(Replica.node_id, Replica.id).where(Replica.status.in_(ACTIVE_REPLICA))
                )
                by_node: dict[str, set[str]] = {}
                for node_id, replica_id in rows:
                    by_node.setdefault(node_id, set()).add(replica_id)
            active = {node_id: frozenset(ids) for node_id, ids in by_node.items()}
            self._active = (as_of, active)
            return active


def assignment_waits(request: Request) -> AssignmentWaits:
    """This process's long-poll filter."""
    return per_state(request, "hashgrid_assignment_waits", AssignmentWaits)


async def join(
    session: AsyncSession, body: JoinRequest, heartbeat_s: float, known: KnownNodes | None = None
) -> JoinResponse:
    """Spend the join token and create the node in one transaction: a bad token creates nothing."""
    node_id = nodes.fresh_node_id()
    secret, _ = split_join_token(body.join_token)  # the CA hash it may carry is the agent's
    site = await sites.consume_join_token(session, secret, node_id)
    node, credential = await nodes.add(session, node_id, site, body.name, body.fingerprint)
    await session.commit()
    if known is not None:
        known.note(node.id, node.status, node.fingerprint)
    return _identity(node, site, credential, heartbeat_s)


async def assignments_of(session: AsyncSession, node_id: str) -> list[Assignment]:
    rows = (
        await session.execute(
            select(Replica, Deployment, CatalogModel)
            .join(Deployment, Replica.deployment_id == Deployment.id)
            # What the replica was placed with: a rolling change leaves running ones as they are.
            .join(
                CatalogModel,
                func.coalesce(Replica.model_id, Deployment.model_id) == CatalogModel.id,
            )
            .where(Replica.node_id == node_id, Replica.status.in_(ACTIVE_REPLICA))
            .order_by(Replica.id)
        )
    ).all()
    gpu_memory: dict[int, int] | None = None
    out = []
    for replica, deployment, model in rows:
        engine = replica.engine or engine_of(deployment, model)
        gpus = list(replica.gpus or [])
        spec = ModelSpec(
            name=deployment.name,
            source=model.source,
            format=model.format,
            context_length=model.context_length,
            tensor_parallel_size=len(gpus) or 1,  # as placed: one rank per GPU given
            task=model.task,
            size_bytes=model.size_bytes,
            sha256=model.sha256,
        )
        if gpus and gpu_only(engine):
            if gpu_memory is None:
                gpu_memory = await _gpu_memory(session, node_id)
            totals = [gpu_memory.get(g, 0) for g in gpus]
            spec.gpu_memory_fraction = gpu_memory_fraction(replica.memory_bytes, totals)
        out.append(
            Assignment(
                replica_id=replica.id,
                deployment=deployment.name,
                engine=engine,
                model=spec,
                gpus=gpus,
            )
        )
    return out


async def _gpu_memory(session: AsyncSession, node_id: str) -> dict[int, int]:
    """Memory of each GPU of the node, by NVML index, from its stored fingerprint."""
    node = await session.get(Node, node_id)
    gpus = nodes.stored_gpus(node.fingerprint) if node is not None else []
    return {g.index: g.memory_total_bytes for g in gpus}


async def heartbeat(
    state: ServerState,
    known: KnownNodes,
    node: NodePrincipal,
    fingerprint: Fingerprint | None,
    holdings: list[Holding] | None = None,
) -> None:
    """Record a beat. The database hears of it only when the node's status, stored fingerprint
    or stored holdings change; a ready node with nothing new costs no query."""
    state.liveness.beat(node.id)
    await known.refresh()
    stable = _stable(fingerprint.model_dump(mode="json")) if fingerprint is not None else None
    held = [h.model_dump(mode="json") for h in holdings] if holdings is not None else None
    if (
        known.status(node.id) == NodeStatus.READY
        and (stable is None or known.fingerprint_unchanged(node.id, stable))
        and (held is None or known.holdings_unchanged(node.id, held))
    ):
        return
    async with state.sessions() as session:
        row = await session.get(Node, node.id)
        if row is None or row.credential_hash != node.credential_hash:
            raise Unauthorized("unknown node credential")  # revoked while this beat was on its way
        if fingerprint is not None:
            await nodes.update_fingerprint(session, row, fingerprint, state.changes)
        if held is not None:
            await nodes.update_holdings(session, row, held)
        changed = await nodes.set_status(session, row, NodeStatus.READY)
        known.note(row.id, row.status, row.fingerprint, row.holdings)
    if changed:
        known.bumped(await state.changes.bump())


async def rotate(session: AsyncSession, node: NodePrincipal, heartbeat_s: float) -> JoinResponse:
    """A new credential for the calling node (the caller then forgets the old one)."""
    credential = await nodes.rotate_credential(session, node.id, node.credential_hash)
    if credential is None:
        raise Unauthorized("unknown node credential")  # revoked or rotated meanwhile
    row, site = await nodes.get(session, node.id)
    return _identity(row, site, credential, heartbeat_s)


def _identity(node: Node, site: Site, credential: str, heartbeat_s: float) -> JoinResponse:
    """What a node is told when it gets a credential, by joining or rotating."""
    return JoinResponse(
        node_id=node.id,
        node_name=node.name,
        site=site.name,
        credential=credential,
        heartbeat_interval_s=heartbeat_s,
    )


async def verify(
    session: AsyncSession, node: NodePrincipal, report: VerificationReport, changes: Changes
) -> tuple[Verification, bool]:
    """Store the verdict on the calling node's benchmark and admit or refuse the node on it;
    the verdict and whether the node's class changed."""
    row = await session.get(Node, node.id)
    if row is None or row.credential_hash != node.credential_hash:
        raise Unauthorized("unknown node credential")  # revoked while this report was on its way
    return await nodes.record_verification(session, row, report, changes)
