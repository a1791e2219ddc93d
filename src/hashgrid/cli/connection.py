"""Which control plane the CLI talks to, and as whom."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from hashgrid.cli.output import api_failure, fail
from hashgrid.cli.upfile import UpFile
from hashgrid.client import ApiError, HashgridClient
from hashgrid.common.paths import default_home


@contextmanager
def client(ctx: typer.Context) -> Iterator[HashgridClient]:
    """A client from --server/--token, HASHGRID_SERVER/HASHGRID_TOKEN, or <home>/up.json.

    An error answer from the API ends the command with its message, never a traceback.
    """
    options = ctx.find_root().params
    server = options.get("server") or os.environ.get("HASHGRID_SERVER")
    token = options.get("token") or os.environ.get("HASHGRID_TOKEN")
    home: Path = options.get("home") or default_home()
    if not (server and token):
        up = UpFile.load(home)
        if up is not None:
            server = server or up.server_url
            token = token or up.admin_token
    if not (server and token):
        raise fail(
            "no control plane: pass --server and --token, set HASHGRID_SERVER and "
            f"HASHGRID_TOKEN, or run `hashgrid up` (which writes {home / 'up.json'})"
        )
    with HashgridClient(server, token) as c:
        try:
            yield c
        except ApiError as e:
            raise api_failure(e) from e
