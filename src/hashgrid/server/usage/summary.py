"""A caller's usage summed by day, model, key or region, in the database.

The sums run in SQL on the scoped, windowed records (`service.visible_to`), which the indexes
on (customer_id, started_at) and (node_id, started_at) bound and, on PostgreSQL, hold all that
is summed (migration 0022): no record is read into Python, nor from the table. A record's day
is its UTC calendar day (`dialects.UTCDay`).

A window that spans closed days (ended UTC days) takes their sums from `ClosedDays` where it
holds them, summing in SQL only the days it does not hold and the open ends of the window (the
part of a day before `since` is not summed; today is summed each time): a summary of the last
30 days sums one day of records, not thirty.
"""

from collections.abc import Hashable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.billing.money import usd
from hashgrid.contracts.api.organizations import OrgKind
from hashgrid.contracts.api.usage import Grouping, UsageSummaryQuery, UsageSummaryRow
from hashgrid.server.db.base import utcnow
from hashgrid.server.sites.tables import Site
from hashgrid.server.usage.closed_days import ClosedDays, Sums
from hashgrid.server.usage.dialects import UTCDay
from hashgrid.server.usage.service import filtered, visible_to
from hashgrid.server.usage.tables import UsageRecordRow

SUMMED = ("requests", "prompt_tokens", "completion_tokens", "cost_pico")
DAY_OF = "day_of"  # the column that splits a query's sums into days (apart from a `day` group)

r = UsageRecordRow
GROUP_COLUMNS = {
    Grouping.DAY: UTCDay(r.started_at).label("day"),
    Grouping.MODEL: r.model.label("model"),
    Grouping.KEY: r.key_id.label("key_id"),
    Grouping.REGION: Site.region.label("region"),
}


async def summarize(
    session: AsyncSession,
    scope: str | None,
    kind: OrgKind | None,
    asked: UsageSummaryQuery,
    closed: ClosedDays | None = None,
) -> list[UsageSummaryRow]:
    """The records `scope` sees in `asked`'s window and filters, summed per group, in the
    order of the groups' values (null last)."""
    assert asked.since is not None
    assert asked.until is not None
    shape: Hashable = (scope, kind, tuple(asked.group_by), asked.model, asked.key_id)
    first = _day_after(asked.since)  # the first whole day in the window
    end = min(asked.until.astimezone(UTC).date(), utcnow().date())  # whole, closed days end
    days = [first + timedelta(days=i) for i in range((end - first).days)]
    if closed is None or len(days) < 2:
        rows = await _sums(session, scope, kind, asked, asked.since, asked.until)
        return _merged(rows, asked.group_by)
    rows = []
    held = {day: closed.get(shape, day) for day in days}
    missing = [day for day, sums in held.items() if sums is None]
    if missing:
        generations = {day: closed.generation(day) for day in missing}
        span = (_start(missing[0]), _start(missing[-1] + timedelta(days=1)))
        by_day: dict[date, Sums] = {day: [] for day in missing}
        for row in await _sums(session, scope, kind, asked, *span, split=True):
            if (day := row.pop(DAY_OF)) in by_day:
                by_day[day].append(row)
        for day, sums in by_day.items():
            closed.put(shape, day, sums, generations[day])
            held[day] = sums
    for kept in held.values():
        rows += kept or []
    for start, stop in ((asked.since, _start(first)), (_start(end), asked.until)):
        if start < stop:
            rows += await _sums(session, scope, kind, asked, start, stop)
    return _merged(rows, asked.group_by)


async def _sums(
    session: AsyncSession,
    scope: str | None,
    kind: OrgKind | None,
    asked: UsageSummaryQuery,
    since: datetime,
    until: datetime,
    split: bool = False,
) -> Sums:
    """The sums per group (and per day, if `split`) of the records in [since, until)."""
    groups = [GROUP_COLUMNS[g] for g in asked.group_by]
    if split:
        groups.append(UTCDay(r.started_at).label(DAY_OF))
    window = asked.model_copy(update={"since": since, "until": until})
    query = (
        select(
            *groups,
            func.count().label("requests"),
            func.coalesce(func.sum(r.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(r.completion_tokens), 0).label("completion_tokens"),
            func.coalesce(func.sum(r.cost_pico), 0).label("cost_pico"),
        )
        .select_from(r)
        .where(visible_to(scope, kind), filtered(window))
        .group_by(*groups)
    )
    if Grouping.REGION in asked.group_by:
        query = query.outerjoin(Site, Site.name == r.site)
    return [dict(found._mapping) for found in await session.execute(query)]


def _merged(rows: Sums, group_by: Sequence[Grouping]) -> list[UsageSummaryRow]:
    """`rows` of the same groups added together, in the order of the groups' values."""
    labels = [GROUP_COLUMNS[g].name for g in group_by]
    total: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        group = tuple(row[label] for label in labels)
        into = total.setdefault(
            group, dict.fromkeys(SUMMED, 0) | dict(zip(labels, group, strict=True))
        )
        for field in SUMMED:
            into[field] += row[field]
    ordered = sorted(total.items(), key=lambda kv: tuple((v is None, v) for v in kv[0]))
    return [_row(values) for _, values in ordered]


def _row(values: dict[str, Any]) -> UsageSummaryRow:
    values["cost_usd"] = usd(int(values.pop("cost_pico")))
    return UsageSummaryRow(**values)


def _start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _day_after(moment: datetime) -> date:
    """The first UTC day that begins at or after `moment`."""
    day = moment.astimezone(UTC).date()
    return day if _start(day) == moment else day + timedelta(days=1)
