"""Bounded field types: what a database column can hold, refused at the edge with a 422.

PostgreSQL refuses a NUL character in text and a string longer than its `varchar(n)`, and its
`integer` is 32 bits and `bigint` 64; SQLite stores all of these. A value past a column's
bounds that an API accepted would fail only at the commit, as a 500 on one backend. Every field
the server stores takes one of these types, its bounds those of its column, so the OpenAPI
document states them and schemathesis generates within them.
"""

from typing import Annotated

from pydantic import Field, StringConstraints

# Any character but NUL (PostgreSQL text cannot hold it).
NO_NUL = r"^[^\x00]*$"

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


def text(max_length: int, min_length: int = 0) -> StringConstraints:
    """Constraints of a string held in a `String(max_length)` (or `Text`) column."""
    return StringConstraints(min_length=min_length, max_length=max_length, pattern=NO_NUL)


# Free text in a `Text` column: bounded all the same, as a body is held in memory.
LongText = Annotated[str, text(10_000)]
ShortText = Annotated[str, text(100)]  # names, ids and labels in `String(100)` or narrower
Int32 = Annotated[int, Field(ge=-INT32_MAX - 1, le=INT32_MAX)]
Count32 = Annotated[int, Field(ge=0, le=INT32_MAX)]  # a count in an `Integer` column
Count64 = Annotated[int, Field(ge=0, le=INT64_MAX)]  # a count or size in a `BigInteger` column
Finite = Annotated[float, Field(allow_inf_nan=False)]
