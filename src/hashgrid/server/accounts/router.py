"""Sign-up, sign-in (a personal token for the CLI, or a browser session), the caller's own
user and tokens, and the members and invitations of an organization."""

from datetime import timedelta

from fastapi import APIRouter, Request, Response, status

from hashgrid.contracts.api.accounts import (
    InviteAccept,
    InviteCreate,
    InviteCreated,
    Me,
    MemberOut,
    MemberRole,
    MembershipOut,
    PersonalTokenCreated,
    PersonalTokenOut,
    RoleChange,
    SessionStarted,
    SignedIn,
    SignIn,
    SignUp,
    SignupInviteCreate,
    TokenCreate,
    UserOut,
)
from hashgrid.contracts.api.organizations import OrgKind
from hashgrid.server import pages
from hashgrid.server.accounts import service
from hashgrid.server.accounts.tables import Membership, User
from hashgrid.server.accounts.throttle import SignInThrottle
from hashgrid.server.audit.recorder import attribute
from hashgrid.server.auth import CSRF_COOKIE, SESSION_COOKIE, per_state
from hashgrid.server.errors import Invalid, NotFound, TooManyRequests
from hashgrid.server.organizations import service as organizations
from hashgrid.server.organizations.tables import Organization
from hashgrid.server.params import PathName
from hashgrid.server.policy import Caller
from hashgrid.server.principal import Principal, role_in
from hashgrid.server.state import Session, State

router = APIRouter(prefix="/api/v1", tags=["accounts"])


@router.post("/signup", status_code=status.HTTP_201_CREATED)
async def sign_up(body: SignUp, session: Session, state: State, request: Request) -> SignedIn:
    """Create an organization (customer or operator) and its first admin; answers a personal
    token for the new admin (shown once)."""
    _throttle(request, body.email)
    user, organization = await service.sign_up(session, body, state.settings.signup == "invite")
    return await _signed_in(session, request, user, organization, MemberRole.ADMIN, "signup", 90)


@router.post("/login")
async def log_in(body: SignIn, session: Session, request: Request) -> SignedIn:
    """Trade an email and password for a personal token in one of the user's organizations."""
    _throttle(request, body.email)
    user = await service.check_password(session, body.email, body.password)
    membership, organization = service.choose(
        await service.memberships(session, user.id), body.organization
    )
    role = MemberRole(membership.role)
    return await _signed_in(
        session, request, user, organization, role, body.token_name, body.expires_days
    )


@router.post("/session")
async def start_session(
    body: SignIn, session: Session, state: State, request: Request, response: Response
) -> SessionStarted:
    """Sign a browser in: the session is an HttpOnly, SameSite cookie; every call that changes
    something must also carry the answer's `csrf_token` in `x-csrf-token`."""
    _throttle(request, body.email)
    user = await service.check_password(session, body.email, body.password)
    membership, organization = service.choose(
        await service.memberships(session, user.id), body.organization
    )
    role = MemberRole(membership.role)
    attribute(request, _as_member(user, organization, role))
    ttl = timedelta(seconds=state.settings.session_ttl_s)
    row, cookie, csrf = await service.start_session(session, user.id, organization.id, ttl)
    secure = request.url.scheme == "https"
    max_age = int(ttl.total_seconds())
    response.set_cookie(
        SESSION_COOKIE, cookie, max_age=max_age, httponly=True, samesite="strict", secure=secure
    )
    # Readable by the dashboard's script (not HttpOnly), which echoes it in `x-csrf-token`.
    response.set_cookie(CSRF_COOKIE, csrf, max_age=max_age, samesite="strict", secure=secure)
    return SessionStarted(
        csrf_token=csrf,
        expires_at=row.expires_at,
        user=UserOut.model_validate(user),
        organization=organization.name,
        kind=OrgKind(organization.kind),
        role=role,
    )


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT)
async def end_session(caller: Caller, session: Session, response: Response) -> None:
    """Sign the browser out (a personal token is revoked with `DELETE /me/tokens/{id}`)."""
    if caller.session_id is None:
        raise Invalid("this call signs out a browser session; revoke a token instead")
    await service.end_session(session, caller.session_id)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)


@router.post("/invites/accept")
async def accept_invite(body: InviteAccept, session: Session, request: Request) -> SignedIn:
    """Join an organization with an invite code; answers a personal token there."""
    _throttle(request, body.email)
    user, (membership, organization) = await service.accept_invite(session, body)
    role = MemberRole(membership.role)
    return await _signed_in(session, request, user, organization, role, "invite", 90)


@router.post("/invites", status_code=status.HTTP_201_CREATED)
async def create_signup_invite(
    body: SignupInviteCreate, caller: Caller, session: Session
) -> InviteCreated:
    """A code that lets one new organization of `kind` sign up (for invite-only sign-up)."""
    invite, code = await service.create_invite(
        session, None, body.kind, MemberRole.ADMIN, body.expires_days, caller.user_id
    )
    return InviteCreated(
        code=code,
        organization=None,
        kind=body.kind,
        role=MemberRole.ADMIN,
        expires_at=invite.expires_at,
    )


@router.get("/me")
async def me(caller: Caller, session: Session) -> Me:
    """Who this credential is: its user, organization and role, and the user's memberships."""
    user = await session.get(User, caller.user_id) if caller.user_id else None
    organization = (
        await session.get(Organization, caller.organization_id) if caller.organization_id else None
    )
    joined = await service.memberships(session, user.id) if user else []
    return Me(
        user=UserOut.model_validate(user) if user else None,
        organization=organization.name if organization else None,
        kind=OrgKind(organization.kind) if organization else None,
        role=caller.role,
        memberships=[
            MembershipOut(
                organization=o.name,
                organization_id=o.id,
                kind=OrgKind(o.kind),
                role=MemberRole(m.role),
            )
            for m, o in joined
        ],
    )


@router.get("/me/tokens")
async def list_tokens(caller: Caller, session: Session, page: pages.Page) -> list[PersonalTokenOut]:
    """The caller's personal tokens (never their secrets), oldest first."""
    found = await service.tokens(session, _user(caller), page.cursor, page.limit)
    page.link(found.next_cursor)
    return [PersonalTokenOut.model_validate(t) for t in found.items]


@router.post("/me/tokens", status_code=status.HTTP_201_CREATED)
async def create_token(body: TokenCreate, caller: Caller, session: Session) -> PersonalTokenCreated:
    """A new personal token in the caller's organization, with a role no higher than the
    caller's. Shown once."""
    user_id = _user(caller)
    role = body.role or (MemberRole.ADMIN if caller.is_admin else MemberRole.MEMBER)
    if role == MemberRole.ADMIN and not caller.is_admin:
        raise Invalid("a member cannot make an admin token")
    assert caller.organization_id is not None
    token, secret = await service.issue_token(
        session, user_id, caller.organization_id, role, body.name, body.expires_days
    )
    return PersonalTokenCreated(**PersonalTokenOut.model_validate(token).model_dump(), token=secret)


@router.delete("/me/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_token(token_id: PathName, caller: Caller, session: Session) -> None:
    """Revoke one of the caller's personal tokens: its next call gets 401."""
    await service.revoke_token(session, _user(caller), token_id)


@router.get("/organizations/{name}/members")
async def list_members(
    name: PathName, caller: Caller, session: Session, page: pages.Page
) -> list[MemberOut]:
    """The organization's members, by email."""
    organization = await organizations.get_visible(session, name, caller.scope)
    found = await service.members(session, organization.id, page.cursor, page.limit)
    page.link(found.next_cursor)
    return [_member_out(m, u) for m, u in found.items]


@router.put("/organizations/{name}/members/{user_id}")
async def change_role(
    name: PathName, user_id: PathName, body: RoleChange, caller: Caller, session: Session
) -> MemberOut:
    """Make a member an admin or a member (an organization keeps one admin at least)."""
    organization = await organizations.get_visible(session, name, caller.scope)
    await service.set_role(session, organization.id, user_id, body.role)
    found = await service.member(session, organization.id, user_id)
    if found is None:
        raise NotFound(f"no member {user_id!r}")
    return _member_out(*found)


@router.delete("/organizations/{name}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_member(
    name: PathName, user_id: PathName, caller: Caller, session: Session
) -> None:
    """Remove a member: their tokens and sessions in this organization stop working at once."""
    organization = await organizations.get_visible(session, name, caller.scope)
    await service.set_role(session, organization.id, user_id, None)


@router.post("/organizations/{name}/invites", status_code=status.HTTP_201_CREATED)
async def create_invite(
    name: PathName, body: InviteCreate, caller: Caller, session: Session
) -> InviteCreated:
    """A one-time code for someone to join this organization with `role`. Shown once."""
    organization = await organizations.get_visible(session, name, caller.scope)
    invite, code = await service.create_invite(
        session, organization.id, None, body.role, body.expires_days, caller.user_id
    )
    return InviteCreated(
        code=code,
        organization=organization.name,
        kind=None,
        role=body.role,
        expires_at=invite.expires_at,
    )


def _member_out(membership: Membership, user: User) -> MemberOut:
    return MemberOut(
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=MemberRole(membership.role),
        joined_at=membership.created_at,
    )


def _user(caller: Principal) -> str:
    if caller.user_id is None:
        raise Invalid("this call is for users; the admin token has no user")
    return caller.user_id


def _as_member(user: User, organization: Organization, role: MemberRole) -> Principal:
    return Principal(
        role_in(organization, role),
        organization_id=organization.id,
        organization_kind=OrgKind(organization.kind),
        user_id=user.id,
    )


async def _signed_in(
    session: Session,
    request: Request,
    user: User,
    organization: Organization,
    role: MemberRole,
    token_name: str,
    days: int,
) -> SignedIn:
    attribute(request, _as_member(user, organization, role))
    token, secret = await service.issue_token(
        session, user.id, organization.id, role, token_name, days
    )
    return SignedIn(
        token=secret,
        token_id=token.id,
        expires_at=token.expires_at,
        user=UserOut.model_validate(user),
        organization=organization.name,
        kind=OrgKind(organization.kind),
        role=role,
    )


def _throttle(request: Request, email: str) -> None:
    throttle = per_state(
        request,
        "hashgrid_signin_throttle",
        lambda state: SignInThrottle(
            state.settings.signin_per_account,
            state.settings.signin_per_address,
            state.settings.signin_window_s,
        ),
    )
    address = request.client.host if request.client else "unknown"
    wait = throttle.attempt(email.strip().lower(), address)
    if wait:
        raise TooManyRequests("too many sign-in attempts: try again later", wait)
