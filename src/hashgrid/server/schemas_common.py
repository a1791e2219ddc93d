"""Pieces every domain's API schemas share."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"),
]


class Out(BaseModel):
    """A response shape read from table rows."""

    model_config = ConfigDict(from_attributes=True)
