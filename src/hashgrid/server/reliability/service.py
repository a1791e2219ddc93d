"""Spot-checks and reliability scores on the control plane.

Spot-checks arrive from gateways in batches (`store_checks`), each kept once by its id. After a
batch, each node it names is judged on its latest `window` checks: `mismatches` failures among
them quarantine it (`nodes/admission.py: set_admission`), which takes its replicas out of the
gateways' view and placement. A node quarantined stays so until an operator asks for its
re-verification; its later checks change nothing.

Scores (`compute_scores`, run by `reconcile/scores.py`) come from counts over the window:
uptime from the node's status at each pass (decayed, `capacity.score.decayed`), failed and slow
requests from its usage records, agreement from its spot-checks; a site's from its nodes'
counts summed. `capacity/score.py` turns counts into the score and its parts.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.capacity.score import Counts, decayed, expected_ttft_ms, reliability, total
from hashgrid.contracts.api.common import ReliabilityOut
from hashgrid.contracts.spotchecks import SpotCheckAck, SpotCheckResult
from hashgrid.contracts.states import NodeAdmission, NodeStatus
from hashgrid.server.changes import Changes
from hashgrid.server.db.base import utcnow
from hashgrid.server.nodes.admission import set_admission
from hashgrid.server.nodes.tables import Node
from hashgrid.server.reliability.tables import ReliabilityScore, SpotCheckRow
from hashgrid.server.usage.tables import UsageRecordRow

log = structlog.get_logger("hashgrid.server.reliability")

NODE = "node"
SITE = "site"


@dataclass(frozen=True)
class QuarantineRule:
    mismatches: int = 3  # failed checks ...
    window: int = 10  # ... among a node's latest this many quarantine it


async def store_checks(
    session: AsyncSession,
    results: Iterable[SpotCheckResult],
    gateway: str | None,
    rule: QuarantineRule,
    changes: Changes,
) -> SpotCheckAck:
    """Store the results not stored yet, then quarantine the nodes they show lying."""
    unique = {r.check_id: r for r in results}
    if not unique:
        return SpotCheckAck(accepted=0, duplicates=0)
    existing = set(
        (
            await session.scalars(
                select(SpotCheckRow.check_id).where(SpotCheckRow.check_id.in_(unique))
            )
        ).all()
    )
    fresh = [
        {**r.model_dump(), "gateway_id": gateway, "received_at": utcnow()}
        for cid, r in unique.items()
        if cid not in existing
    ]
    if fresh:
        insert = (
            postgresql.insert(SpotCheckRow)
            if session.get_bind().dialect.name == "postgresql"
            else sqlite.insert(SpotCheckRow)
        )
        await session.execute(insert.on_conflict_do_nothing(), fresh)
    await session.commit()
    quarantined = []
    for node_id in sorted({r["node_id"] for r in fresh if not r["passed"]}):
        if await _judge(session, node_id, rule, changes):
            quarantined.append(node_id)
    return SpotCheckAck(
        accepted=len(fresh), duplicates=len(unique) - len(fresh), quarantined=quarantined
    )


async def _judge(
    session: AsyncSession, node_id: str, rule: QuarantineRule, changes: Changes
) -> bool:
    """Quarantine `node_id` if its latest checks fail the rule; True if it was quarantined now."""
    node = await session.get(Node, node_id)
    if node is None or node.admission != NodeAdmission.ADMITTED:
        return False
    latest = (
        await session.execute(
            select(
                SpotCheckRow.passed, SpotCheckRow.model, SpotCheckRow.agreement, SpotCheckRow.mode
            )
            .where(SpotCheckRow.node_id == node_id)
            .order_by(SpotCheckRow.checked_at.desc())
            .limit(rule.window)
        )
    ).all()
    failed = [row for row in latest if not row.passed]
    if len(failed) < rule.mismatches:
        return False
    last = failed[0]
    reason = (
        f"{len(failed)} of its last {len(latest)} spot-checks disagreed with a trusted replica "
        f"(latest: model {last.model}, {last.mode} check, agreement {last.agreement:.2f}); "
        "`hashgrid nodes verify` re-admits it after a fix"
    )
    await set_admission(session, node, NodeAdmission.QUARANTINED, reason, changes=changes)
    log.warning("node quarantined by spot-checks", node=node.name, reason=reason)
    return True


async def node_counts(
    session: AsyncSession, since: datetime, nodes: list[Node]
) -> dict[str, Counts]:
    """Requests, failures, slow requests and spot-checks of each of `nodes` since `since`."""
    ids = [n.id for n in nodes]
    out: dict[str, dict[str, int]] = defaultdict(dict)
    by_class: dict[float, list[str]] = defaultdict(list)
    for n in nodes:
        by_class[expected_ttft_ms(n.capacity_class)].append(n.id)
    u = UsageRecordRow
    for expected, members in by_class.items():
        rows = await session.execute(
            select(
                u.node_id,
                func.count(),
                func.sum(case((u.status_code >= 500, 1), else_=0)),
                func.sum(case((u.ttft_ms > expected, 1), else_=0)),
            )
            .where(u.node_id.in_(members), u.started_at >= since)
            .group_by(u.node_id)
        )
        for node_id, requests, failed, slow in rows.all():
            out[node_id].update(requests=requests, failed=failed or 0, slow=slow or 0)
    s = SpotCheckRow
    rows = await session.execute(
        select(s.node_id, func.count(), func.sum(case((s.passed, 0), else_=1)))
        .where(s.node_id.in_(ids), s.checked_at >= since)
        .group_by(s.node_id)
    )
    for node_id, checks, mismatches in rows.all():
        out[node_id].update(checks=checks, mismatches=mismatches or 0)
    return {i: Counts(**out.get(i, {})) for i in ids}


async def compute_scores(session: AsyncSession, window_s: float) -> bool:
    """Score every node and site now; True when a score moved by 0.01 or more (gateways and
    the scheduler should see it)."""
    now = utcnow()
    nodes = list((await session.scalars(select(Node))).all())
    stored = {
        (r.kind, r.subject_id): r for r in (await session.scalars(select(ReliabilityScore))).all()
    }
    counts = await node_counts(session, now - timedelta(seconds=window_s), nodes)
    moved = False
    by_site: dict[str, list[Counts]] = defaultdict(list)
    for node in nodes:
        row = stored.get((NODE, node.id))
        if row is None:
            row = ReliabilityScore(kind=NODE, subject_id=node.id, score=1.0, parts={})
            row.up_s = row.seen_s = 0.0
            session.add(row)
            dt = 0.0
        else:
            dt = min((now - row.computed_at).total_seconds(), window_s)
        row.up_s, row.seen_s = decayed(
            row.up_s, row.seen_s, node.status == NodeStatus.READY, dt, window_s
        )
        c = counts[node.id]
        c = Counts(row.up_s, row.seen_s, c.requests, c.failed, c.slow, c.checks, c.mismatches)
        by_site[node.site_id].append(c)
        moved |= _set(row, c, now)
    for site_id, members in by_site.items():
        row = stored.get((SITE, site_id))
        if row is None:
            row = ReliabilityScore(kind=SITE, subject_id=site_id, score=1.0, parts={})
            session.add(row)
        c = total(members)
        row.up_s, row.seen_s = c.up_s, c.seen_s
        moved |= _set(row, c, now)
    await session.commit()
    return moved


def _set(row: ReliabilityScore, c: Counts, now: datetime) -> bool:
    """Write `c`'s score and parts into `row`; True when its score moved by 0.01 or more."""
    r = reliability(c)
    moved = abs(round(row.score, 2) - round(r.score, 2)) >= 0.01
    row.score = r.score
    row.parts = score_parts(r.parts(), c)
    row.computed_at = now
    return moved


def score_parts(parts: dict[str, float], c: Counts) -> dict[str, Any]:
    """What an operator reads: each part, rounded, and the counts behind them."""
    return {
        **{k: round(v, 4) for k, v in parts.items()},
        "requests": c.requests,
        "failed": c.failed,
        "slow": c.slow,
        "checks": c.checks,
        "mismatches": c.mismatches,
    }


async def scores(
    session: AsyncSession, kind: str, ids: Iterable[str]
) -> dict[str, ReliabilityScore]:
    """The stored scores of `kind` ("node" or "site") for `ids`."""
    wanted = list(ids)
    if not wanted:
        return {}
    rows = await session.scalars(
        select(ReliabilityScore).where(
            ReliabilityScore.kind == kind, ReliabilityScore.subject_id.in_(wanted)
        )
    )
    return {r.subject_id: r for r in rows.all()}


def reliability_out(row: ReliabilityScore | None) -> ReliabilityOut | None:
    """A stored score as the REST API shows it."""
    if row is None:
        return None
    parts = row.parts or {}
    return ReliabilityOut.model_validate(
        {"uptime": 1.0, "success": 1.0, "speed": 1.0, "agreement": 1.0, **parts}
        | {"score": row.score, "computed_at": row.computed_at}
    )
