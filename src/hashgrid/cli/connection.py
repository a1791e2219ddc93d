"""Which control plane the CLI talks to, and as whom."""

import copy
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import typer
from pydantic import ValidationError
from typer.core import TyperGroup

from hashgrid.cli.loginfile import SavedLogin, same_server
from hashgrid.cli.output import api_failure, fail, invalid
from hashgrid.cli.trust import verify_for
from hashgrid.cli.upfile import UP_FILE, UpFile
from hashgrid.client import ApiError, HashgridClient
from hashgrid.common.paths import default_home


@dataclass(frozen=True)
class Connection:
    """A control plane and the credential to call it with."""

    server: str
    token: str | None  # None: anonymous (sign-up, sign-in, accepting an invite)
    login: SavedLogin | None = None  # where the token is the saved login's


def home_of(ctx: typer.Context) -> Path:
    home: Path | None = ctx.find_root().params.get("home")
    return home or default_home()


def _given(ctx: typer.Context, name: str) -> str | None:
    value: str | None = ctx.find_root().params.get(name)
    return value or os.environ.get(f"HASHGRID_{name.upper()}")


def saved(home: Path) -> list[Connection]:
    """The connections kept under `home`: the saved login's, then `hashgrid up`'s admin token."""
    found = []
    if login := SavedLogin.load(home):
        found.append(Connection(login.server_url, login.token, login))
    if up := UpFile.load(home):
        found.append(Connection(up.server_url, up.admin_token))
    return found


def resolve(ctx: typer.Context) -> Connection:
    """--server/--token (or HASHGRID_SERVER/HASHGRID_TOKEN), else the saved login
    (`<home>/config.json`), else the admin token `hashgrid up` wrote (`<home>/up.json`).

    A saved token goes only to the server it was saved for: with --server naming another, it
    is not sent (the command fails, saying how to sign in there)."""
    server, token = _given(ctx, "server"), _given(ctx, "token")
    home = home_of(ctx)
    kept = saved(home)
    if token:
        server = server or next((k.server for k in kept), None)
        if server:
            return Connection(server, token)
    else:
        for connection in kept:
            if server is None or same_server(server, connection.server):
                return connection
        if server:
            raise fail(
                f"no token for {server}: run `hashgrid login --server {server} --email EMAIL`, "
                "or pass --token (or set HASHGRID_TOKEN)"
            )
    raise fail(
        "no control plane: run `hashgrid login --server URL --email EMAIL`, pass --server and "
        "--token (or set HASHGRID_SERVER and HASHGRID_TOKEN), or run `hashgrid up` (which "
        f"writes {home / UP_FILE})"
    )


def server_url(ctx: typer.Context) -> str:
    """The control plane to sign up or sign in at: --server (or HASHGRID_SERVER), else the
    saved login's, else the one `hashgrid up` runs."""
    server = _given(ctx, "server") or next((k.server for k in saved(home_of(ctx))), None)
    if server is None:
        raise fail("which control plane? pass --server URL (or set HASHGRID_SERVER)")
    return server


@contextmanager
def client(ctx: typer.Context) -> Iterator[HashgridClient]:
    """A client acting as the caller `resolve` finds."""
    with calling(resolve(ctx)) as c:
        yield c


@contextmanager
def calling(connection: Connection) -> Iterator[HashgridClient]:
    """A client for `connection`. An error answer from the API, no answer at all, or a request
    that breaks its shape ends the command with one line saying what to do, never a
    traceback."""
    server, login = connection.server, connection.login
    with HashgridClient(server, connection.token, verify=verify_for(server)) as c:
        try:
            yield c
        except ApiError as e:
            if e.status == 401 and login is not None:
                hint = f"the saved login ({login.email}) is not valid any more: `hashgrid login`"
                raise api_failure(e, hint) from e
            raise api_failure(e) from e
        except ValidationError as e:
            raise invalid(e) from e
        except httpx.ConnectError as e:
            if "CERTIFICATE_VERIFY_FAILED" in str(e):
                raise fail(
                    f"{server} presents a certificate this CLI does not trust: pass --ca-file "
                    "(the server's <home>/server/tls/ca.pem), or `hashgrid login --ca-hash "
                    "sha256:...` to pin its CA"
                ) from e
            raise fail(
                f"cannot reach the control plane at {server} ({type(e).__name__}): is "
                "`hashgrid up` or `hashgrid server` running? (set HASHGRID_SERVER or --server)"
            ) from e
        except httpx.TransportError as e:
            raise fail(
                f"cannot reach the control plane at {server} ({type(e).__name__}): is "
                "`hashgrid up` or `hashgrid server` running? (set HASHGRID_SERVER or --server)"
            ) from e


LENT_OPTIONS = {"--server", "--token", "--home", "--ca-file"}


def _keep(ctx: Any, param: Any, value: object) -> None:
    """An option given after a command's name counts as if given before it.

    (`ctx` and `param` are the types of the click that typer vendors and does not export.)"""
    if value is not None:
        ctx.find_root().params[param.name] = value
        if param.name == "ca_file":
            os.environ["HASHGRID_CA_FILE"] = str(value)  # where cli/trust.py reads it


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
