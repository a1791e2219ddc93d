"""Which control plane the CLI talks to, and as whom."""

import copy
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import typer
from pydantic import ValidationError
from typer.core import TyperGroup

from hashgrid.cli.output import api_failure, fail, invalid
from hashgrid.cli.upfile import UpFile
from hashgrid.client import ApiError, HashgridClient
from hashgrid.common.paths import default_home


@contextmanager
def client(ctx: typer.Context) -> Iterator[HashgridClient]:
    """A client from --server/--token, HASHGRID_SERVER/HASHGRID_TOKEN, or <home>/up.json.

    An error answer from the API, no answer at all, or a request that breaks its shape ends the
    command with one line saying what to do, never a traceback.
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
        except ValidationError as e:
            raise invalid(e) from e
        except httpx.TransportError as e:
            raise fail(
                f"cannot reach the control plane at {server} ({type(e).__name__}): is "
                "`hashgrid up` or `hashgrid server` running? (set HASHGRID_SERVER or --server)"
            ) from e


LENT_OPTIONS = {"--server", "--token", "--home"}


def _keep(ctx: Any, param: Any, value: object) -> None:
    """An option given after a command's name counts as if given before it.

    (`ctx` and `param` are the types of the click that typer vendors and does not export.)"""
    if value is not None:
        ctx.find_root().params[param.name] = value


class ConnectionOptionsEverywhere(TyperGroup):
    """The root command group: its options (--server, --token, --home) are also accepted after
    every command's name, so `hashgrid nodes list --home DIR` works as
    `hashgrid --home DIR nodes list` does. A command with a `--home` of its own (`up` and the
    processes) takes its own options instead."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for command in self.commands.values():
            self._lend(command)

    def _lend(self, command: Any) -> None:
        if isinstance(command, TyperGroup):
            for sub in command.commands.values():
                self._lend(sub)
            return
        taken = {opt for param in command.params for opt in param.opts}
        if "--home" in taken:
            return
        for param in self.params:
            if set(param.opts) & LENT_OPTIONS and not taken & set(param.opts):
                lent = copy.copy(param)
                # Read from the environment once, by the root: here it would override an
                # option given before the command's name.
                lent.envvar, lent.expose_value, lent.callback = None, False, _keep
                command.params.append(lent)
