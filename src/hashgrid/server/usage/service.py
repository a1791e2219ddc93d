"""Storing usage records exactly once per request id, whatever a gateway resends, each priced
from the price book (server/usage/pricing.py).

A batch is checked record by record: the valid ones are stored, the others set aside in
`usage_rejected` (once each, by digest) with the reason, and the batch is acknowledged. Were
the batch refused instead, its gateway would resend it forever and ship nothing after it.
"""

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC
from typing import Any

import structlog
from pydantic import JsonValue, ValidationError
from sqlalchemy import ColumnElement, and_, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.contracts.api.organizations import OrgKind
from hashgrid.contracts.api.usage import Grouping, UsageFilter, UsageOut
from hashgrid.contracts.gateway import REQUEST_ID_LEN, UsageAck, UsageRecord
from hashgrid.server import pages
from hashgrid.server.errors import Invalid
from hashgrid.server.nodes.tables import Node
from hashgrid.server.sites.tables import Site
from hashgrid.server.usage import pricing
from hashgrid.server.usage.closed_days import ClosedDays
from hashgrid.server.usage.dialects import AnyOf
from hashgrid.server.usage.spend import Spend
from hashgrid.server.usage.tables import RejectedUsageRow, UsageRecordRow

log = structlog.get_logger("hashgrid.server.usage")

# What is kept of a rejected record's JSON and of the reason: enough to read what went wrong,
# bounded whatever a gateway sends.
REJECTED_RECORD_CHARS = 4000
REJECTED_REASON_CHARS = 1000


async def store(
    session: AsyncSession,
    raw: Sequence[JsonValue],
    gateway: str,
    spend: Spend,
    closed: ClosedDays | None = None,
) -> UsageAck:
    """Store the valid records of a batch and set the others aside; one commit for both."""
    records: list[UsageRecord] = []
    rejected: list[dict[str, Any]] = []
    for item in raw:
        try:
            records.append(UsageRecord.model_validate(item))
        except ValidationError as e:
            rejected.append(_rejected(item, e, gateway))
    if rejected:
        await session.execute(_insert(session, RejectedUsageRow).on_conflict_do_nothing(), rejected)
        log.warning("usage records set aside", gateway=gateway, count=len(rejected))
    ack = await _store_valid(session, records, spend, closed)
    return ack.model_copy(update={"rejected": len(rejected)})


async def _store_valid(
    session: AsyncSession,
    records: Sequence[UsageRecord],
    spend: Spend,
    closed: ClosedDays | None,
) -> UsageAck:
    # The first record of a request id wins, in a batch as across batches: a stream journaled
    # at a sync tick that then ended is spooled whole first, and its journaled copy (a 499) after
    # it when the gateway restarts from a crash.
    unique: dict[str, UsageRecord] = {}
    for one in records:
        unique.setdefault(one.request_id, one)
    existing = set(
        (
            await session.scalars(
                select(UsageRecordRow.request_id).where(UsageRecordRow.request_id.in_(unique))
            )
        ).all()
    )
    fresh = [r.model_dump() for rid, r in unique.items() if rid not in existing]
    if not fresh:
        await session.commit()  # the rejected records, if any
        return UsageAck(accepted=0, duplicates=len(records), spend_seq=spend.seq)
    await pricing.price(session, fresh)
    # ON CONFLICT DO NOTHING also covers a concurrent batch carrying the same ids; RETURNING
    # tells which rows this batch stored, so their cost is counted once.
    stored = set(
        (
            await session.scalars(
                _insert(session, UsageRecordRow)
                .on_conflict_do_nothing()
                .returning(UsageRecordRow.request_id),
                fresh,
            )
        ).all()
    )
    await session.commit()
    if closed is not None:  # records of a closed day arrived late: its kept sums no longer hold
        closed.touched(r["started_at"].astimezone(UTC).date() for r in fresh)
    for r in fresh:
        if r["usage_clamped"] and r["request_id"] in stored:
            log.warning(
                "node reported implausible token counts",
                node_id=r["node_id"],
                replica_id=r["replica_id"],
                request_id=r["request_id"],
            )
    seq = spend.add(
        (r["key_id"], r["customer_id"], r["started_at"], r["cost_pico"])
        for r in fresh
        if r["request_id"] in stored
    )
    return UsageAck(accepted=len(stored), duplicates=len(records) - len(stored), spend_seq=seq)


def _insert(
    session: AsyncSession, table: type[UsageRecordRow] | type[RejectedUsageRow]
) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can skip conflicting rows, in the session's dialect."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _rejected(item: JsonValue, error: ValidationError, gateway: str) -> dict[str, Any]:
    """A `usage_rejected` row for `item`: its JSON in ASCII (escapes, so NUL and surrogates are
    storable), cut to a bound, and what was wrong, without the values themselves."""
    text = json.dumps(item, ensure_ascii=True, sort_keys=True)
    rid = item.get("request_id") if isinstance(item, dict) else None
    if not (isinstance(rid, str) and rid.isprintable() and len(rid) <= REQUEST_ID_LEN):
        rid = None  # printable: no NUL, no lone surrogate
    reason = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in error.errors()
    )
    return {
        "digest": hashlib.sha256(text.encode()).hexdigest(),
        "request_id": rid,
        "gateway": gateway,
        "reason": reason[:REJECTED_REASON_CHARS],
        "record": text[:REJECTED_RECORD_CHARS],
    }


REJECTED_ORDER = pages.Order(
    pages.By(RejectedUsageRow.received_at, descending=True),
    pages.By(RejectedUsageRow.digest, descending=True),
)


async def rejected(
    session: AsyncSession, cursor: str | None, limit: int
) -> pages.Items[RejectedUsageRow]:
    """A page of the records set aside, newest first."""
    return await pages.scalars(session, select(RejectedUsageRow), REJECTED_ORDER, cursor, limit)


def visible_to(scope: str | None, kind: OrgKind | None) -> ColumnElement[bool]:
    """The records an organization sees: a customer its own requests, an operator the requests
    its nodes served; `scope` None: every record."""
    if scope is None:
        return true()
    if kind == OrgKind.CUSTOMER:
        return UsageRecordRow.customer_id == scope
    served_by = select(Node.id).join(Site, Site.id == Node.site_id).where(Site.operator_id == scope)
    return AnyOf(UsageRecordRow.node_id, served_by.scalar_subquery())


# What each side is not shown of a record it sees: an operator is not told whose request its node
# served, a customer not which operator's node served it (the site, a place, it is told).
HIDDEN_FROM = {
    OrgKind.OPERATOR: {"key_id": None, "customer_id": None, "client_request_id": None},
    OrgKind.CUSTOMER: {"replica_id": None, "node_id": None},
}


def shown(record: UsageRecordRow, kind: OrgKind | None) -> UsageOut:
    """`record` as a caller of organization `kind` (None: the platform) is shown it."""
    out = UsageOut.model_validate(record)
    hidden = HIDDEN_FROM.get(kind) if kind is not None else None
    return out.model_copy(update=hidden) if hidden else out


def check_asked(kind: OrgKind | None, only: UsageFilter, group_by: Sequence[Grouping] = ()) -> None:
    """An operator may not pick out or sum its usage by a customer's key: it is not shown them."""
    if kind == OrgKind.OPERATOR and (only.key_id is not None or Grouping.KEY in group_by):
        raise Invalid("an operator's usage is not told apart by key: filter or group otherwise")


def filtered(only: UsageFilter) -> ColumnElement[bool]:
    """The records `only` lets through: of its model, of its key, started in its window (`since`
    included, `until` not); a filter left out lets any through."""
    r = UsageRecordRow
    conditions = []
    if only.model is not None:
        conditions.append(r.model == only.model)
    if only.key_id is not None:
        conditions.append(r.key_id == only.key_id)
    if only.since is not None:
        conditions.append(r.started_at >= only.since)
    if only.until is not None:
        conditions.append(r.started_at < only.until)
    return and_(true(), *conditions)


ORDER = pages.Order(
    pages.By(UsageRecordRow.started_at, descending=True),
    pages.By(UsageRecordRow.request_id, descending=True),
)


async def recent(
    session: AsyncSession,
    cursor: str | None,
    limit: int,
    scope: str | None = None,
    kind: OrgKind | None = None,
    only: UsageFilter | None = None,
) -> pages.Items[UsageRecordRow]:
    """A page of the records `scope` sees (see `visible_to`) that `only` lets through, newest
    first."""
    query = select(UsageRecordRow).where(visible_to(scope, kind), filtered(only or UsageFilter()))
    return await pages.scalars(session, query, ORDER, cursor, limit)
