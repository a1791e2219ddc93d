"""The API's path and query parameters that several routers share: FastAPI's own annotations,
so they stay in the server (the shapes of bodies live in `contracts/api/`)."""

from typing import Annotated, Any

from fastapi import Path, Query

from hashgrid.contracts.bounds import INT64_MAX, NO_NUL

# A name or id in the URL path, looked up in a `String(100)` (or narrower) column; a
# `{name:path}` of the catalog or deployments is one of `String(200)`.
PathName = Annotated[str, Path(min_length=1, max_length=100, pattern=NO_NUL)]
LongPathName = Annotated[str, Path(min_length=1, max_length=200, pattern=NO_NUL)]

# A long poll's parameters: the revision seen last, and how long to hold the poll open.
After = Annotated[
    int, Query(ge=0, le=INT64_MAX, description="Answer once the revision exceeds this")
]
Wait = Annotated[
    float, Query(ge=0, le=3600, allow_inf_nan=False, description="Seconds to hold the poll open")
]


def filter_by(description: str, max_length: int = 100) -> Any:
    """A list's query filter on a name or id: bounded and without NUL, so a bad one is a 422,
    never a database error."""
    return Query(max_length=max_length, pattern=NO_NUL, description=description)
