"""`hashgrid members ...`, `hashgrid invites ...` and `hashgrid audit`: an organization's people
and its record of changes. The organization is the one the caller acts in unless named."""

import typer

from hashgrid.cli.connection import Connection, calling, client, resolve, server_url
from hashgrid.cli.output import JsonOption, console, emit_json, fail, table
from hashgrid.cli.signin import PasswordStdinOption, SignedInJsonOption, keep, read_password
from hashgrid.client import HashgridClient
from hashgrid.contracts.api.accounts import (
    InviteAccept,
    InviteCreate,
    InviteCreated,
    MemberRole,
    RoleChange,
    SignupInviteCreate,
)
from hashgrid.contracts.api.audit import AuditEntryOut
from hashgrid.contracts.api.organizations import OrgKind

members_app = typer.Typer(help="The members of your organization.", no_args_is_help=True)
invites_app = typer.Typer(
    help="Invite codes: to join an organization, or to sign up.", no_args_is_help=True
)

OrgOption = typer.Option(None, "--org", help="The organization (default: the one you act in).")
DaysOption = typer.Option(7, min=1, max=366, help="Days until the code expires.")


def organization_of(c: HashgridClient, given: str | None) -> str:
    """`given`, or the organization the caller's credential acts in."""
    if given:
        return given
    acting = c.me().organization
    if acting is None:
        raise fail("the admin token acts in no organization: name one (--org ORG)")
    return acting


def user_id_of(c: HashgridClient, organization: str, user: str) -> str:
    """A member's user id, from the id itself or their email."""
    if "@" not in user:
        return user
    for member in c.members(organization):
        if member.email == user.strip().lower():
            return member.user_id
    raise fail(f"{user} is not a member of {organization}")


@members_app.command("list")
def list_members(
    ctx: typer.Context,
    organization: str | None = typer.Argument(
        None, metavar="[ORG]", help="Default: the one you act in."
    ),
    as_json: bool = JsonOption,
) -> None:
    """An organization's members and their roles."""
    with client(ctx) as c:
        name = organization_of(c, organization)
        members = c.members(name)
    if as_json:
        return emit_json(members)
    rows = [(m.email, m.name, m.role, f"{m.joined_at:%Y-%m-%d}", m.user_id) for m in members]
    table(f"members of {name}", ["email", "name", "role", "joined", "user id"], rows)


@members_app.command("role")
def set_role(
    ctx: typer.Context,
    user: str = typer.Argument(..., metavar="USER", help="A member's user id or email."),
    role: MemberRole = typer.Argument(..., help="admin or member."),
    organization: str | None = OrgOption,
    as_json: bool = JsonOption,
) -> None:
    """Make a member an admin or a member (an organization keeps one admin at least)."""
    with client(ctx) as c:
        name = organization_of(c, organization)
        member = c.set_member_role(name, user_id_of(c, name, user), RoleChange(role=role))
    if as_json:
        return emit_json(member)
    console.print(
        f"{member.email} is now {member.role} of {name} (tokens made before keep a role no "
        "higher than the one they were made with: a promoted member signs in again)",
        markup=False,
        highlight=False,
    )


@members_app.command("remove")
def remove_member(
    ctx: typer.Context,
    user: str = typer.Argument(..., metavar="USER", help="A member's user id or email."),
    organization: str | None = OrgOption,
) -> None:
    """Remove a member: their tokens and sessions in the organization stop working at once."""
    with client(ctx) as c:
        name = organization_of(c, organization)
        c.remove_member(name, user_id_of(c, name, user))
    console.print(f"removed {user} from {name}", markup=False, highlight=False)


@invites_app.command("create")
def create_invite(
    ctx: typer.Context,
    role: MemberRole = typer.Option(MemberRole.MEMBER, help="The role the code gives."),
    days: int = DaysOption,
    organization: str | None = OrgOption,
    as_json: bool = JsonOption,
) -> None:
    """A one-time code for someone to join your organization (`hashgrid invites accept`)."""
    connection = resolve(ctx)
    with calling(connection) as c:
        name = organization_of(c, organization)
        invite = c.create_invite(name, InviteCreate(role=role, expires_days=days))
    how = f"hashgrid invites accept CODE --server {connection.server} --email EMAIL"
    _print_invite(invite, as_json, f"to join {name} as {invite.role} (they run `{how}`)")


@invites_app.command("signup")
def create_signup_invite(
    ctx: typer.Context,
    kind: OrgKind = typer.Option(..., help="The kind of organization it may sign up."),
    days: int = DaysOption,
    as_json: bool = JsonOption,
) -> None:
    """(Platform admin) a one-time code for a new organization to sign up, where sign-up is by
    invitation (`hashgrid signup --invite CODE`)."""
    with client(ctx) as c:
        invite = c.create_signup_invite(SignupInviteCreate(kind=kind, expires_days=days))
    _print_invite(invite, as_json, f"to sign up a {kind} organization")


def _print_invite(invite: InviteCreated, as_json: bool, what: str) -> None:
    if as_json:
        return emit_json(invite)
    console.print(
        f"invite code {what} (one use, expires {invite.expires_at:%Y-%m-%d %H:%M} UTC; shown "
        "once):",
        markup=False,
        highlight=False,
    )
    typer.echo(invite.code)


@invites_app.command("accept")
def accept_invite(
    ctx: typer.Context,
    code: str,
    email: str = typer.Option(..., help="Your email (a new user, or one you already are)."),
    name: str = typer.Option("", help="Your name, as a new user."),
    password_stdin: bool = PasswordStdinOption,
    as_json: bool = SignedInJsonOption,
) -> None:
    """Join an organization with an invite code, signed in there. As a new user, the password
    given becomes yours; as an existing one, it must be yours."""
    server = server_url(ctx)
    password = read_password(password_stdin, confirm=True)
    with calling(Connection(server, None)) as c:
        body = InviteAccept(code=code, email=email, password=password, name=name)
        answer = c.accept_invite(body)
    keep(ctx, server, answer, as_json)


def audit(
    ctx: typer.Context,
    limit: int = typer.Option(20, min=1, max=1000, help="How many entries, newest first."),
    as_json: bool = JsonOption,
) -> None:
    """The changes made through the API that you may read: your organization's (an admin's),
    or every one (the platform admin)."""
    with client(ctx) as c:
        entries = c.audit(limit)
    if as_json:
        return emit_json(entries)
    rows = [
        (
            f"{e.at:%Y-%m-%d %H:%M:%S}",
            e.actor,
            e.action,
            f"{e.method} {e.path}",
            _touched(e),
        )
        for e in entries
    ]
    table("audit log", ["time (UTC)", "actor", "action", "call", "touched"], rows)


def _touched(entry: AuditEntryOut) -> str:
    """How many rows of each table the change wrote (their ids are in `--json`)."""
    return ", ".join(f"{len(ids)} {table}" for table, ids in sorted(entry.touched.items()))
