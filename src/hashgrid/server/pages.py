"""Cursor pagination for list endpoints.

A list answers at most `limit` items in a fixed order on a unique key; when more follow, the
answer's `Link` header (RFC 8288, `rel="next"`) holds the URL of the next page and
`x-next-cursor` its cursor alone, which the client passes back as `?cursor=`. A cursor is the
sort key of the page's last item, opaque to clients (base64 of JSON): pages hold steady while
rows are added, and the database seeks to the key instead of counting past an offset.
"""

import base64
import binascii
from typing import Annotated, Any

import orjson
from fastapi import Query, Request, Response

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
Limit = Annotated[int, Query(ge=1, le=1000, description="The most items to answer")]


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
