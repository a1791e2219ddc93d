"""The SQL that usage reads write once per dialect: what PostgreSQL and SQLite spell apart, or
plan apart.

- `UTCDay`, `UTCMonth`: a record's UTC calendar day, and its month (`YYYY-MM`, its billing
  period). PostgreSQL keeps a zone (the day is taken in UTC whatever the session's zone); SQLite
  keeps UTC as text, 'YYYY-MM-DD HH:MM:SS.ffffff'.
- `AnyOf`: `column IN (subquery)`, which PostgreSQL is given as `column = ANY(ARRAY(subquery))`:
  the subquery (an operator's few node ids) runs once and each record is checked against the
  set, where `IN` was planned as a join run once per record read (4x slower at a million
  records, bench/tenancy.py).
"""

from typing import Any

from sqlalchemy import Boolean, Date, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class UTCDay(FunctionElement[Any]):
    """The UTC calendar day of a timestamp: `UTCDay(column)`."""

    type = Date()
    name = "utc_day"
    inherit_cache = True


@compiles(UTCDay)
def _utc_day(element: UTCDay, compiler: SQLCompiler, **kw: Any) -> str:
    # Written as migration 0022's statistics on it are, so the planner knows its few values.
    return f"CAST(timezone('UTC', {compiler.process(element.clauses, **kw)}) AS DATE)"


@compiles(UTCDay, "sqlite")
def _utc_day_sqlite(element: UTCDay, compiler: SQLCompiler, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"


class UTCMonth(FunctionElement[Any]):
    """The UTC calendar month of a timestamp as `YYYY-MM`: a record's billing period."""

    type = String()
    name = "utc_month"
    inherit_cache = True


@compiles(UTCMonth)
def _utc_month(element: UTCMonth, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_char(timezone('UTC', {compiler.process(element.clauses, **kw)}), 'YYYY-MM')"


@compiles(UTCMonth, "sqlite")
def _utc_month_sqlite(element: UTCMonth, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite holds the UTC time as text, 'YYYY-MM-DD HH:MM:SS.ffffff'.
    return f"substr({compiler.process(element.clauses, **kw)}, 1, 7)"


class AnyOf(FunctionElement[Any]):
    """Whether a column's value is among a subquery's: `AnyOf(column, select(...))`."""

    type = Boolean()
    name = "any_of"
    inherit_cache = True


def _parts(element: AnyOf, compiler: SQLCompiler, **kw: Any) -> tuple[str, str]:
    column, subquery = element.clauses.clauses
    return compiler.process(column, **kw), compiler.process(subquery, **kw)


@compiles(AnyOf)
def _any_of(element: AnyOf, compiler: SQLCompiler, **kw: Any) -> str:
    column, subquery = _parts(element, compiler, **kw)
    return f"{column} IN {subquery}"


@compiles(AnyOf, "postgresql")
def _any_of_postgresql(element: AnyOf, compiler: SQLCompiler, **kw: Any) -> str:
    column, subquery = _parts(element, compiler, **kw)
    return f"{column} = ANY(ARRAY{subquery})"
