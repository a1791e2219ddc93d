"""`hashgrid signup`, `login`, `logout`, `whoami` and `tokens ...`: a user's own credentials.

A sign-in keeps the personal token it got in `<home>/config.json` (owner-only), which every
command then acts as; the token is never printed, except in `--json` for scripts that keep it
themselves.
"""

import sys

import httpx
import typer

from hashgrid.cli.connection import Connection, calling, client, home_of, resolve, server_url
from hashgrid.cli.loginfile import SavedLogin
from hashgrid.cli.output import JsonOption, console, emit_json, fail, table
from hashgrid.cli.trust import pin
from hashgrid.client import ApiError, HashgridClient
from hashgrid.common.tls import UntrustedCA
from hashgrid.contracts.api.accounts import MemberRole, SignedIn, SignIn, SignUp, TokenCreate
from hashgrid.contracts.api.organizations import OrgKind

tokens_app = typer.Typer(help="Your personal access tokens.", no_args_is_help=True)

PasswordStdinOption = typer.Option(
    False,
    "--password-stdin",
    help="Read the password from standard input (for scripts) instead of a hidden prompt.",
)
SignedInJsonOption = typer.Option(
    False,
    "--json",
    help="Print JSON for scripts, the new personal token included (it is saved either way).",
)


def read_password(from_stdin: bool, confirm: bool) -> str:
    """The password: all of stdin less its final newline, or typed at a hidden prompt."""
    if from_stdin:
        return sys.stdin.read().removesuffix("\n").removesuffix("\r")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    return password


def keep(ctx: typer.Context, server: str, answer: SignedIn, as_json: bool) -> None:
    """Save the sign-in as the user's login, and say who is signed in where."""
    path = SavedLogin.of(server, answer).save(home_of(ctx))
    if as_json:
        return emit_json(answer)
    console.print(
        f"signed in as {answer.user.email}, {answer.role} of {answer.kind} "
        f"{answer.organization}, at {server} (saved in {path})",
        markup=False,
        highlight=False,
    )


def signup(
    ctx: typer.Context,
    email: str = typer.Option(..., help="Your email: you sign in with it."),
    organization: str = typer.Option(..., help="The new organization's name."),
    kind: OrgKind = typer.Option(..., help="customer: sends requests; operator: runs sites."),
    name: str = typer.Option("", help="Your name."),
    invite: str | None = typer.Option(None, help="A sign-up invite code, where one is needed."),
    password_stdin: bool = PasswordStdinOption,
    as_json: bool = SignedInJsonOption,
) -> None:
    """Sign up: a new organization, with you as its admin, signed in."""
    server = server_url(ctx)
    password = read_password(password_stdin, confirm=True)
    with calling(Connection(server, None)) as c:
        body = SignUp(
            email=email,
            password=password,
            name=name,
            organization=organization,
            kind=kind,
            invite=invite,
        )
        answer = c.sign_up(body)
    keep(ctx, server, answer, as_json)


def login(
    ctx: typer.Context,
    email: str = typer.Option(..., help="The email you signed up with."),
    organization: str | None = typer.Option(
        None, help="Which of your organizations to act in (needed if you have several)."
    ),
    password_stdin: bool = PasswordStdinOption,
    as_json: bool = SignedInJsonOption,
    ca_hash: str | None = typer.Option(
        None,
        "--ca-hash",
        help="An https control plane's CA hash (sha256:..., the server prints it): its CA is "
        "fetched, checked and pinned, and every later command trusts it.",
    ),
) -> None:
    """Sign in: every command then acts as you, in that organization."""
    server = server_url(ctx)
    if ca_hash is not None:
        try:
            pin(server, ca_hash, home_of(ctx))
        except (UntrustedCA, OSError, ValueError) as e:
            raise fail(f"cannot trust {server}: {e}") from e
    password = read_password(password_stdin, confirm=False)
    with calling(Connection(server, None)) as c:
        answer = c.log_in(SignIn(email=email, password=password, organization=organization))
    keep(ctx, server, answer, as_json)


def logout(ctx: typer.Context) -> None:
    """Sign out: revoke the saved token on its server (if it answers) and forget it."""
    home = home_of(ctx)
    saved = SavedLogin.load(home)
    if saved is None:
        SavedLogin.remove(home)  # whatever unreadable file was there
        console.print("not signed in")
        return
    with HashgridClient(saved.server_url, saved.token, timeout=10.0) as c:
        try:
            c.revoke_personal_token(saved.token_id)
            how = "token revoked"
        except (ApiError, httpx.HTTPError) as e:
            how = f"the server did not revoke the token ({e}): it expires on its own"
    SavedLogin.remove(home)
    console.print(
        f"signed out {saved.email} at {saved.server_url}; {how}", markup=False, highlight=False
    )


def whoami(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Who the commands act as: user, organization and role, and where."""
    connection = resolve(ctx)
    with calling(connection) as c:
        me = c.me()
    if as_json:
        return emit_json(me)
    who = f"{me.user.email}" if me.user else "the admin token"
    where = f" of {me.kind} {me.organization}" if me.organization else ""
    console.print(f"{who}: {me.role}{where}, at {connection.server}", markup=False, highlight=False)
    others = [m for m in me.memberships if m.organization != me.organization]
    for m in others:
        console.print(
            f"  also {m.role} of {m.kind} {m.organization} (`hashgrid login --organization "
            f"{m.organization}`)",
            markup=False,
            highlight=False,
        )


@tokens_app.command("list")
def list_tokens(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Your personal tokens (never their secrets)."""
    with client(ctx) as c:
        tokens = c.list_personal_tokens()
    if as_json:
        return emit_json(tokens)
    rows = [
        (
            t.id,
            t.name,
            t.prefix + "...",
            t.role,
            f"{t.expires_at:%Y-%m-%d}",
            f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never",
            f"{t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "",
        )
        for t in tokens
    ]
    columns = ["id", "name", "token", "role", "expires", "last used", "revoked"]
    table("personal tokens", columns, rows)


@tokens_app.command("create")
def create_token(
    ctx: typer.Context,
    name: str,
    role: MemberRole | None = typer.Option(None, help="Default: your own role."),
    days: int = typer.Option(90, help="Days until it expires."),
    as_json: bool = JsonOption,
) -> None:
    """Make a personal token for a script, in the organization you act in. Shown once."""
    with client(ctx) as c:
        token = c.create_personal_token(TokenCreate(name=name, role=role, expires_days=days))
    if as_json:
        return emit_json(token)
    console.print(
        f"personal token {token.name} ({token.role}, expires {token.expires_at:%Y-%m-%d}; "
        "shown once, store it now):",
        markup=False,
        highlight=False,
    )
    typer.echo(token.token)


@tokens_app.command("revoke")
def revoke_token(ctx: typer.Context, token_id: str) -> None:
    """Revoke one of your personal tokens: its next call is refused."""
    connection = resolve(ctx)
    with calling(connection) as c:
        c.revoke_personal_token(token_id)
    login = connection.login
    if login is not None and login.token_id == token_id:
        SavedLogin.remove(home_of(ctx))
        console.print(f"revoked {token_id}, the saved login's token: signed out")
        return
    console.print(f"revoked {token_id}")
