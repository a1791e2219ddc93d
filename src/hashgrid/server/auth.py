"""Who is calling: anyone, a user (by personal token or browser session), the admin token, a
gateway, or a node, each known by its credential. What each may do is `server/policy.py`'s.

Bearer secrets say what they are by their prefix (`hg_pat_`, `hg_admin_`, `hg_gw_`,
`hg_node_`); a browser sends its session cookie instead, and with it, on every call that
changes something, the CSRF token it got at sign-in (double submit, checked against a hash).

Node credentials are checked against `NodeCredentials`, an in-memory cache from credential hash
to node id filled on first use, so a heartbeat costs no query. Revoking or rotating a credential
drops the node's entries (`NodeCredentials.forget`) right after the database commit, so the old
secret gets 401 on its next call to this process. The cache is per process: a second server
process on the same database would go on accepting a revoked credential it had cached.
"""

from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from fastapi import Request
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.common.secrets import hash_secret, same_secret
from hashgrid.contracts.api.access import Role
from hashgrid.contracts.api.accounts import MemberRole
from hashgrid.contracts.api.organizations import OrgKind
from hashgrid.server.access.tables import AccessToken
from hashgrid.server.accounts.tables import BrowserSession, Membership, PersonalToken
from hashgrid.server.db.base import utcnow
from hashgrid.server.errors import Forbidden, Unauthorized
from hashgrid.server.nodes.service import NODE_CREDENTIAL_PREFIX
from hashgrid.server.nodes.tables import Node
from hashgrid.server.organizations.tables import Organization
from hashgrid.server.principal import (
    ANONYMOUS,
    SAFE_METHODS,
    CallerRole,
    NodePrincipal,
    Principal,
    role_in,
)
from hashgrid.server.state import ServerState, get_state

T = TypeVar("T")
Held = TypeVar("Held", PersonalToken, BrowserSession)  # a user's credential, kept hashed

PERSONAL_TOKEN_PREFIX = "hg_pat_"
SESSION_COOKIE = "hg_session"
CSRF_COOKIE = "hg_csrf"
CSRF_HEADER = "x-csrf-token"
# A personal token's `last_used_at` is written at most this often: not one write per call.
LAST_USED_EVERY = timedelta(minutes=5)


class NodeCredentials:
    """Node credential hash -> node id, for the credentials this process has seen work.

    A lookup that misses reads the database and fills the cache, unless a credential was
    forgotten in the meantime: a read that started before a revocation committed must not put
    the revoked credential back (`generation` tells).
    """

    def __init__(self) -> None:
        self._node_of: dict[str, str] = {}
        self._hashes_of: dict[str, set[str]] = {}
        self._generation = 0

    @property
    def generation(self) -> int:
        return self._generation

    def lookup(self, credential_hash: str) -> str | None:
        return self._node_of.get(credential_hash)

    def fill(self, credential_hash: str, node_id: str, generation: int) -> None:
        """Remember a credential read from the database when `generation` was current."""
        if generation != self._generation:
            return
        self._node_of[credential_hash] = node_id
        self._hashes_of.setdefault(node_id, set()).add(credential_hash)

    def forget(self, node_id: str) -> None:
        """Drop every credential of `node_id`; call after committing its new credential hash."""
        self._generation += 1
        for credential_hash in self._hashes_of.pop(node_id, set()):
            self._node_of.pop(credential_hash, None)

    def __len__(self) -> int:
        return len(self._node_of)


def per_state(request: Request, key: str, make: Callable[[ServerState], T]) -> T:
    """The object `make` builds for this app's running `ServerState`, built on first use.

    Kept on `app.state` under `key` next to the server state it belongs to, and built afresh
    when the app starts again with a new one (a cache must not outlive the state it caches).
    """
    state = get_state(request)
    held = getattr(request.app.state, key, None)
    if held is None or held[0] is not state:
        held = (state, make(state))
        setattr(request.app.state, key, held)
    made: T = held[1]
    return made


def node_credentials(request: Request) -> NodeCredentials:
    """This process's node credential cache."""
    return per_state(request, "hashgrid_node_credentials", lambda _: NodeCredentials())


def bearer_secret(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()


async def authenticate(request: Request) -> Principal:
    """The caller: by its bearer secret, else its session cookie, else `ANONYMOUS`.
    A credential that is given but wrong is a 401, never anonymous."""
    secret = bearer_secret(request)
    if secret is None:
        if request.headers.get("authorization"):
            raise Unauthorized("the authorization header must be `Bearer <token>`")
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            return await _session(request, cookie)
        return ANONYMOUS
    if secret.startswith(NODE_CREDENTIAL_PREFIX):
        node = await _node(request, secret)
        return Principal(CallerRole.NODE, node_id=node.id, credential_hash=node.credential_hash)
    async with get_state(request).sessions() as session:
        if secret.startswith(PERSONAL_TOKEN_PREFIX):
            return await _personal_token(session, secret)
        return await _access_token(session, secret)


async def _access_token(session: AsyncSession, secret: str) -> Principal:
    row = await session.scalar(
        select(AccessToken).where(
            AccessToken.token_hash == hash_secret(secret), AccessToken.revoked_at.is_(None)
        )
    )
    if row is None:
        raise Unauthorized("unknown or revoked token")
    role = CallerRole.PLATFORM_ADMIN if row.role == Role.ADMIN else CallerRole.GATEWAY
    return Principal(role, token_id=row.id)


async def _held(
    session: AsyncSession, kind: type[Held], secret: str
) -> tuple[Held, str, Organization] | None:
    """The live credential of `kind` whose hash `secret` has, with its user's role now in its
    organization and the organization; None if unknown, revoked, expired, or its user is no
    longer a member there."""
    found = (
        await session.execute(
            select(kind, Membership.role, Organization)
            .join(
                Membership,
                (Membership.user_id == kind.user_id)
                & (Membership.organization_id == kind.organization_id),
            )
            .join(Organization, Organization.id == kind.organization_id)
            .where(
                kind.token_hash == hash_secret(secret),
                kind.revoked_at.is_(None),
                kind.expires_at > utcnow(),
            )
        )
    ).first()
    if found is None:
        return None
    credential, role, organization = found
    return credential, role, organization


def _member(
    organization: Organization, role: MemberRole, user_id: str, **credential: str
) -> Principal:
    return Principal(
        role_in(organization, role),
        organization_id=organization.id,
        organization_kind=OrgKind(organization.kind),
        user_id=user_id,
        **credential,
    )


async def _personal_token(session: AsyncSession, secret: str) -> Principal:
    found = await _held(session, PersonalToken, secret)
    if found is None:
        raise Unauthorized("unknown, expired or revoked token")
    token, member_role, organization = found
    # The lower of the token's role and the user's role now: a demotion holds at once.
    both_admin = token.role == MemberRole.ADMIN and member_role == MemberRole.ADMIN
    role = MemberRole.ADMIN if both_admin else MemberRole.MEMBER
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_EVERY:
        await session.execute(
            update(PersonalToken).where(PersonalToken.id == token.id).values(last_used_at=now)
        )
        await session.commit()
    return _member(organization, role, token.user_id, token_id=token.id)


async def _session(request: Request, cookie: str) -> Principal:
    async with get_state(request).sessions() as session:
        found = await _held(session, BrowserSession, cookie)
    if found is None:
        raise Unauthorized("the session ended: sign in again")
    browser, member_role, organization = found
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not same_secret(hash_secret(sent), browser.csrf_hash):
            raise Forbidden(f"a call that changes something needs the {CSRF_HEADER} header")
    return _member(organization, MemberRole(member_role), browser.user_id, session_id=browser.id)


async def _node(request: Request, secret: str) -> NodePrincipal:
    """The calling node, from the cache when its credential worked before (no query)."""
    digest = hash_secret(secret)
    cache = node_credentials(request)
    node_id = cache.lookup(digest)
    if node_id is None:
        generation = cache.generation
        async with get_state(request).sessions() as session:
            node_id = await session.scalar(select(Node.id).where(Node.credential_hash == digest))
        if node_id is None:
            raise Unauthorized("unknown node credential")
        cache.fill(digest, node_id, generation)
    return NodePrincipal(node_id, digest)
