"""Writes the audit entry of a change in the transaction that makes the change.

A request's database session is marked with the request (`watch`); every flush of a marked
session notes the rows it inserted, updated or deleted, and just before each commit one
`AuditEntry` names them with the caller and the operation. So an entry exists exactly when the
change was committed, and no handler has to remember to write one. Reads, and the calls of
nodes and gateways (heartbeats, usage: the machines' traffic, not people's changes), are not
entries.
"""

from itertools import chain
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from sqlalchemy import event, inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from hashgrid.server.audit.tables import AuditEntry
from hashgrid.server.principal import SAFE_METHODS, CallerRole, Principal

REQUEST = "hashgrid_audit_request"
TOUCHED = "hashgrid_audit_touched"
ACTOR = "hashgrid_audit_actor"  # on request.state: who a change is written as, if not the caller
NOT_AUDITED = frozenset({CallerRole.NODE, CallerRole.GATEWAY})


def watch(session: AsyncSession, request: Request) -> None:
    """Write an audit entry for each commit `session` makes while it serves `request`."""
    if request.method not in SAFE_METHODS:
        session.info[REQUEST] = request


def attribute(request: Request, principal: Principal) -> None:
    """Write this request's changes as made by `principal` (a user who just signed up or in:
    the caller was anonymous until the change made it someone)."""
    setattr(request.state, ACTOR, principal)


def _principal(request: Request) -> Principal | None:
    actor = getattr(request.state, ACTOR, None)
    return actor if actor is not None else getattr(request.state, "principal", None)


@event.listens_for(Session, "after_flush")
def _note_rows(session: Session, _: Any) -> None:
    if REQUEST not in session.info:
        return
    touched: dict[str, set[str]] = session.info.setdefault(TOUCHED, {})
    for row in chain(session.new, session.dirty, session.deleted):
        if isinstance(row, AuditEntry):
            continue
        mapper = inspect(row).mapper
        key = ",".join(str(v) for v in mapper.primary_key_from_instance(row))
        touched.setdefault(mapper.local_table.name, set()).add(key)


@event.listens_for(Session, "before_commit")
def _write_entry(session: Session) -> None:
    request: Request | None = session.info.get(REQUEST)
    if request is None:
        return
    session.flush()  # so that every row this commit writes is noted
    touched: dict[str, set[str]] = session.info.pop(TOUCHED, {})
    principal = _principal(request)
    if not touched or principal is None or principal.role in NOT_AUDITED:
        return
    route = request.scope.get("route")
    session.add(
        AuditEntry(
            organization_id=principal.organization_id,
            actor=principal.actor if principal.role != CallerRole.ANONYMOUS else "anonymous",
            action=route.name if isinstance(route, APIRoute) else request.url.path,
            method=request.method,
            path=request.url.path[:300],
            touched={table: sorted(ids) for table, ids in sorted(touched.items())},
        )
    )
