"""Signing up, signing in, personal tokens, browser sessions, members and invitations."""

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Row, Select, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.common.secrets import hash_secret, new_secret
from hashgrid.contracts.api.accounts import InviteAccept, MemberRole, SignUp
from hashgrid.contracts.api.organizations import OrgKind
from hashgrid.server import pages
from hashgrid.server.accounts.passwords import hash_password, verify_password
from hashgrid.server.accounts.tables import (
    BrowserSession,
    Invite,
    Membership,
    PersonalToken,
    User,
)
from hashgrid.server.auth import PERSONAL_TOKEN_PREFIX
from hashgrid.server.db.base import utcnow
from hashgrid.server.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from hashgrid.server.organizations.tables import Organization

INVITE_PREFIX = "hg_invite_"
SESSION_PREFIX = "hg_session_"
CSRF_PREFIX = "hg_csrf_"

Joined = tuple[Membership, Organization]


async def sign_up(
    session: AsyncSession, body: SignUp, by_invite_only: bool
) -> tuple[User, Organization]:
    """A new organization of `body.kind` with the new user as its admin, flushed: the caller
    commits it with the user's first token."""
    invite = None
    if by_invite_only or body.invite is not None:
        if body.invite is None:
            raise Forbidden("sign-up is by invitation: pass the invite code you were given")
        invite = await _open_invite(session, body.invite)
        if invite.organization_id is not None or invite.kind != body.kind:
            raise Forbidden(f"this invite is not for signing up a {body.kind} organization")
    if await session.scalar(select(User.id).where(User.email == body.email)):
        raise Conflict("an account with this email exists: sign in, or use another email")
    if await session.scalar(select(Organization.id).where(Organization.name == body.organization)):
        raise Conflict(f"organization {body.organization!r} exists: choose another name")
    user = User(email=body.email, name=body.name, password_hash=await hash_password(body.password))
    organization = Organization(name=body.organization, kind=body.kind)
    session.add_all([user, organization])
    await session.flush()
    session.add(Membership(user_id=user.id, organization_id=organization.id, role=MemberRole.ADMIN))
    if invite is not None:
        await _spend_invite(session, invite, user.id)
    await _flush_unique(session, "an account or organization with this name was just made")
    return user, organization


async def check_password(session: AsyncSession, email: str, password: str) -> User:
    """The user, if `password` is theirs; one answer for a wrong password and no account."""
    user = await session.scalar(select(User).where(User.email == email))
    if not await verify_password(user.password_hash if user else None, password) or user is None:
        raise Unauthorized("wrong email or password")
    return user


async def memberships(session: AsyncSession, user_id: str) -> Sequence[Joined]:
    rows = await session.execute(
        select(Membership, Organization)
        .join(Organization, Organization.id == Membership.organization_id)
        .where(Membership.user_id == user_id)
        .order_by(Organization.name)
    )
    return [(m, o) for m, o in rows]


def choose(joined: Sequence[Joined], organization: str | None) -> Joined:
    """The membership to act in: the one named, or the only one."""
    if organization is not None:
        for membership, org in joined:
            if org.name == organization:
                return membership, org
        raise Forbidden(f"you are not a member of {organization!r}")
    if len(joined) == 1:
        return joined[0]
    if not joined:
        raise Forbidden("you belong to no organization")
    names = ", ".join(org.name for _, org in joined)
    raise Invalid(f"you belong to several organizations ({names}): say which one")


async def issue_token(
    session: AsyncSession,
    user_id: str,
    organization_id: str,
    role: MemberRole,
    name: str,
    days: int,
) -> tuple[PersonalToken, str]:
    """A personal token (only its hash is kept) and its secret."""
    secret = new_secret(PERSONAL_TOKEN_PREFIX)
    token = PersonalToken(
        user_id=user_id,
        organization_id=organization_id,
        role=role,
        name=name,
        prefix=secret[: len(PERSONAL_TOKEN_PREFIX) + 4],
        token_hash=hash_secret(secret),
        expires_at=utcnow() + timedelta(days=days),
    )
    session.add(token)
    await session.commit()
    return token, secret


TOKEN_ORDER = pages.Order(pages.By(PersonalToken.created_at), pages.By(PersonalToken.id))


async def tokens(
    session: AsyncSession, user_id: str, cursor: str | None, limit: int
) -> pages.Items[PersonalToken]:
    """A page of the user's personal tokens, oldest first."""
    query = select(PersonalToken).where(PersonalToken.user_id == user_id)
    return await pages.scalars(session, query, TOKEN_ORDER, cursor, limit)


async def revoke_token(session: AsyncSession, user_id: str, token_id: str) -> None:
    token = await session.get(PersonalToken, token_id)
    if token is None or token.user_id != user_id:
        raise NotFound(f"no token {token_id!r}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        await session.commit()


async def start_session(
    session: AsyncSession, user_id: str, organization_id: str, ttl: timedelta
) -> tuple[BrowserSession, str, str]:
    """A browser session, its cookie secret and its CSRF token."""
    cookie, csrf = new_secret(SESSION_PREFIX), new_secret(CSRF_PREFIX)
    row = BrowserSession(
        user_id=user_id,
        organization_id=organization_id,
        token_hash=hash_secret(cookie),
        csrf_hash=hash_secret(csrf),
        expires_at=utcnow() + ttl,
    )
    session.add(row)
    await session.commit()
    return row, cookie, csrf


async def end_session(session: AsyncSession, session_id: str) -> None:
    await session.execute(
        update(BrowserSession)
        .where(BrowserSession.id == session_id, BrowserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    await session.commit()


MEMBER_ORDER = pages.Order(pages.By(User.email))


def _members(organization_id: str) -> Select[Membership, User]:
    query = select(Membership, User).join(User, User.id == Membership.user_id)
    return query.where(Membership.organization_id == organization_id)


async def members(
    session: AsyncSession, organization_id: str, cursor: str | None, limit: int
) -> pages.Items[Row[Membership, User]]:
    """A page of the organization's members, by email."""
    return await pages.rows(session, _members(organization_id), MEMBER_ORDER, cursor, limit)


async def member(
    session: AsyncSession, organization_id: str, user_id: str
) -> tuple[Membership, User] | None:
    """The user's membership of the organization, if any."""
    row = (await session.execute(_members(organization_id).where(User.id == user_id))).first()
    return None if row is None else (row[0], row[1])


async def set_role(
    session: AsyncSession, organization_id: str, user_id: str, role: MemberRole | None
) -> Membership | None:
    """Change a member's role, or remove the member (`role` None) and revoke their personal
    tokens and browser sessions there: were the user invited back, their old credentials would
    work again. An organization keeps one admin at least: it could not be managed again
    otherwise."""
    membership = await session.scalar(
        select(Membership).where(
            Membership.organization_id == organization_id, Membership.user_id == user_id
        )
    )
    if membership is None:
        raise NotFound(f"no member {user_id!r}")
    if membership.role == MemberRole.ADMIN and role != MemberRole.ADMIN:
        admins = await session.scalar(
            select(func.count())
            .select_from(Membership)
            .where(
                Membership.organization_id == organization_id,
                Membership.role == MemberRole.ADMIN,
            )
        )
        if (admins or 0) <= 1:
            raise Conflict("the organization's last admin cannot step down: make another first")
    if role is None:
        await session.delete(membership)
        now = utcnow()
        for credential in (PersonalToken, BrowserSession):
            await session.execute(
                update(credential)
                .where(
                    credential.user_id == user_id,
                    credential.organization_id == organization_id,
                    credential.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
        await session.commit()
        return None
    membership.role = role
    await session.commit()
    return membership


async def create_invite(
    session: AsyncSession,
    organization_id: str | None,
    kind: OrgKind | None,
    role: MemberRole,
    days: int,
    created_by: str | None,
) -> tuple[Invite, str]:
    code = new_secret(INVITE_PREFIX)
    invite = Invite(
        organization_id=organization_id,
        kind=kind,
        role=role,
        code_hash=hash_secret(code),
        created_by=created_by,
        expires_at=utcnow() + timedelta(days=days),
    )
    session.add(invite)
    await session.commit()
    return invite, code


async def accept_invite(session: AsyncSession, body: InviteAccept) -> tuple[User, Joined]:
    """Join the invite's organization as a new user, or as the existing user whose password
    this is (flushed: the caller commits it with the user's token there)."""
    invite = await _open_invite(session, body.code)
    if invite.organization_id is None:
        raise Invalid("this is a sign-up invite: pass it to sign-up")
    user = await session.scalar(select(User).where(User.email == body.email))
    if user is None:
        user = User(
            email=body.email, name=body.name, password_hash=await hash_password(body.password)
        )
        session.add(user)
        await session.flush()
    elif not await verify_password(user.password_hash, body.password):
        raise Unauthorized("wrong email or password")
    elif await session.scalar(
        select(Membership.id).where(
            Membership.user_id == user.id, Membership.organization_id == invite.organization_id
        )
    ):
        raise Conflict("you are a member of this organization already")
    membership = Membership(
        user_id=user.id, organization_id=invite.organization_id, role=invite.role
    )
    session.add(membership)
    await _spend_invite(session, invite, user.id)
    await _flush_unique(session, "you are a member of this organization already")
    organization = await session.get(Organization, invite.organization_id)
    assert organization is not None
    return user, (membership, organization)


async def _open_invite(session: AsyncSession, code: str) -> Invite:
    invite = await session.scalar(select(Invite).where(Invite.code_hash == hash_secret(code)))
    if invite is None or invite.used_at is not None or invite.expires_at <= utcnow():
        raise Forbidden("invite unknown, used or expired")
    return invite


async def _spend_invite(session: AsyncSession, invite: Invite, user_id: str) -> None:
    """Mark the invite used, unless another request used it first (then 403)."""
    spent = await session.execute(
        update(Invite)
        .where(Invite.id == invite.id, Invite.used_at.is_(None))
        .values(used_at=utcnow(), used_by=user_id)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise Forbidden("invite unknown, used or expired")


async def _flush_unique(session: AsyncSession, clash: str) -> None:
    """Flush; a unique constraint broken by a concurrent request is a 409, not a 500."""
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raise Conflict(clash) from None
