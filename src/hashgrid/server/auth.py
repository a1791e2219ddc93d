"""Who is calling: the admin, a gateway, or a node, each known by its bearer secret.

Node credentials are checked against `NodeCredentials`, an in-memory cache from credential hash
to node id filled on first use, so a heartbeat costs no query. Revoking or rotating a credential
drops the node's entries (`NodeCredentials.forget`) right after the database commit, so the old
secret gets 401 on its next call to this process. The cache is per process: a second server
process on the same database would go on accepting a revoked credential it had cached.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select

from hashgrid.common.secrets import hash_secret
from hashgrid.contracts.api.access import Role
from hashgrid.server.access.tables import AccessToken
from hashgrid.server.errors import Forbidden, Unauthorized
from hashgrid.server.nodes.tables import Node
from hashgrid.server.state import ServerState, Session, get_state

bearer = HTTPBearer(auto_error=False, description="An admin, gateway or node credential.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]

T = TypeVar("T")


@dataclass(frozen=True)
class TokenPrincipal:
    token_id: str
    role: Role


@dataclass(frozen=True)
class NodePrincipal:
    """A node that proved itself with its credential."""

    id: str
    credential_hash: str


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


def _secret(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise Unauthorized("missing bearer token")
    return credentials.credentials


async def _token(session: Session, credentials: Credentials) -> TokenPrincipal:
    digest = hash_secret(_secret(credentials))
    row = await session.scalar(
        select(AccessToken).where(
            AccessToken.token_hash == digest, AccessToken.revoked_at.is_(None)
        )
    )
    if row is None:
        raise Unauthorized("unknown or revoked token")
    return TokenPrincipal(row.id, Role(row.role))


async def require_admin(
    principal: Annotated[TokenPrincipal, Depends(_token)],
) -> TokenPrincipal:
    if principal.role != Role.ADMIN:
        raise Forbidden("this call needs an admin token")
    return principal


async def require_gateway(
    principal: Annotated[TokenPrincipal, Depends(_token)],
) -> TokenPrincipal:
    if principal.role not in (Role.ADMIN, Role.GATEWAY):
        raise Forbidden("this call needs a gateway token")
    return principal


async def require_node(request: Request, credentials: Credentials) -> NodePrincipal:
    """The calling node, from the cache when its credential worked before (no query)."""
    digest = hash_secret(_secret(credentials))
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


Admin = Annotated[TokenPrincipal, Depends(require_admin)]
GatewayCaller = Annotated[TokenPrincipal, Depends(require_gateway)]
CallingNode = Annotated[NodePrincipal, Depends(require_node)]
