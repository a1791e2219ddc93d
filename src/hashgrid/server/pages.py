"""Cursor pagination for list endpoints.

A list answers at most `limit` items in a fixed order on a unique key; when more follow, the
answer's `Link` header (RFC 8288, `rel="next"`) holds the URL of the next page and
`x-next-cursor` its cursor alone, which the client passes back as `?cursor=`. A cursor is the
sort key of the page's last item, opaque to clients (base64 of JSON): pages hold steady while
rows are added, and the database seeks to the key instead of counting past an offset.

A list endpoint takes a `Paging` (its `limit` and `cursor`, and where the link goes), hands
`limit` and `cursor` to its service, which reads one page with `scalars` or `rows` in an `Order`,
and answers the page's items after `Paging.link`.
"""

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar, TypeVarTuple

import orjson
from fastapi import Depends, Query, Request, Response
from sqlalchemy import DateTime, Row, Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from hashgrid.server.db.base import UTCDateTime
from hashgrid.server.errors import Invalid

NEXT_CURSOR = "x-next-cursor"

Cursor = Annotated[
    str | None,
    Query(
        max_length=500,
        pattern=r"^[A-Za-z0-9_=-]*$",
        description="The `x-next-cursor` of the page before",
    ),
]


def encode(*key: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode()


def decode(cursor: str, arity: int) -> list[Any]:
    """The sort key a cursor holds; a cursor this server did not make is a 400."""
    try:
        key = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise Invalid("cursor: not a cursor this API made") from None
    if (
        not isinstance(key, list)
        or len(key) != arity
        or not all(isinstance(k, int) or (isinstance(k, str) and "\x00" not in k) for k in key)
    ):  # a NUL no stored key holds, and PostgreSQL's text cannot take
        raise Invalid("cursor: not a cursor this API made")
    return key


def link_next(request: Request, response: Response, cursor: str | None) -> None:
    """Tell the client where the next page is, if there is one."""
    if cursor is not None:
        url = request.url.include_query_params(cursor=cursor)
        response.headers["link"] = f'<{url}>; rel="next"'
        response.headers[NEXT_CURSOR] = cursor


# The default page of the lists people read whole (`hashgrid keys list`, `sites list`, ...): the
# most a page holds, so that a caller who does not follow `Link` still gets a fleet's worth.
WHOLE = 1000


@dataclass(frozen=True)
class Paging:
    """A list request's page: how many items, after which cursor, and where to say what follows."""

    limit: int
    cursor: str | None
    request: Request
    response: Response

    def link(self, cursor: str | None) -> None:
        link_next(self.request, self.response, cursor)


def paging(default: int = 100, most: int = 1000) -> Any:
    """A dependency reading `limit` (1 to `most`, `default` when absent) and `cursor`."""

    async def read(
        request: Request,
        response: Response,
        cursor: Cursor = None,
        limit: Annotated[
            int, Query(ge=1, le=most, description="The most items to answer")
        ] = default,
    ) -> Paging:
        return Paging(limit, cursor, request, response)

    return Depends(read)


Page = Annotated[Paging, paging()]
WholePage = Annotated[Paging, paging(WHOLE)]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


@dataclass(frozen=True)
class By:
    """One column of a list's order."""

    column: InstrumentedAttribute[Any]
    descending: bool = False


class Order:
    """A list's order: columns whose values together are unique, so a cursor names one place."""

    def __init__(self, *by: By) -> None:
        self.by = by

    def apply(self, query: Select[*Ts], cursor: str | None, limit: int) -> Select[*Ts]:
        """`query` in this order, from just after `cursor`, one row past `limit` (to tell
        whether a next page exists)."""
        query = query.order_by(*(b.column.desc() if b.descending else b.column for b in self.by))
        if cursor is not None:
            query = query.where(self._after(self._values(cursor)))
        return query.limit(limit + 1)

    def _values(self, cursor: str) -> list[Any]:
        values = decode(cursor, len(self.by))
        for i, (b, value) in enumerate(zip(self.by, values, strict=True)):
            if isinstance(b.column.type, DateTime | UTCDateTime):
                values[i] = _moment(value)
            elif not isinstance(value, b.column.type.python_type):
                raise Invalid("cursor: not a cursor this API made")
        return values

    def _after(self, values: Sequence[Any]) -> Any:
        """Rows past `values` in this order: past on the first column, or equal on it and past
        on the next, and so on. The first column's bound (`>=` or `<=`) is repeated on its own,
        so that an index on it bounds the scan."""

        def past(b: By, value: Any) -> Any:
            return b.column < value if b.descending else b.column > value

        ways = []
        for i, b in enumerate(self.by):
            equal = (e.column == v for e, v in zip(self.by[:i], values[:i], strict=True))
            ways.append(and_(*equal, past(b, values[i])))
        first, value = self.by[0], values[0]
        bound = first.column <= value if first.descending else first.column >= value
        return and_(bound, or_(*ways))

    def cursor_of(self, item: Any) -> str:
        """The cursor just after `item`: an entity, or a row holding the order's entity."""
        key = []
        for b in self.by:
            owner = _entity(item, b.column.parent.class_)
            value = getattr(owner, b.column.key)
            key.append(value.isoformat() if isinstance(value, datetime) else value)
        return encode(*key)


@dataclass(frozen=True)
class Items(Generic[T]):
    """One page of a list, and the cursor of the next page (None: this is the last)."""

    items: list[T]
    next_cursor: str | None


async def scalars(
    session: AsyncSession, query: Select[T], order: Order, cursor: str | None, limit: int
) -> Items[T]:
    """One page of a query of one entity."""
    found = list((await session.scalars(order.apply(query, cursor, limit))).all())
    return _page(found, order, limit)


async def rows(
    session: AsyncSession,
    query: Select[*Ts],
    order: Order,
    cursor: str | None,
    limit: int,
) -> Items[Row[*Ts]]:
    """One page of a query of several entities (the order's columns are of one of them)."""
    found = list((await session.execute(order.apply(query, cursor, limit))).all())
    return _page(found, order, limit)


def _page(found: list[T], order: Order, limit: int) -> Items[T]:
    if len(found) <= limit:
        return Items(found, None)
    return Items(found[:limit], order.cursor_of(found[limit - 1]))


def _entity(item: Any, kind: type) -> Any:
    if isinstance(item, kind):
        return item
    return next(part for part in item if isinstance(part, kind))


def _moment(value: object) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise Invalid("cursor: not a cursor this API made") from None
    if moment.tzinfo is None:
        raise Invalid("cursor: not a cursor this API made")
    return moment
