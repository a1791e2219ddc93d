"""Who is calling: the admin, a gateway, or a node, each known by its bearer secret."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select

from hashgrid.common.secrets import hash_secret
from hashgrid.server.access.tables import AccessToken, Role
from hashgrid.server.errors import Forbidden, Unauthorized
from hashgrid.server.nodes.tables import Node
from hashgrid.server.state import Session

bearer = HTTPBearer(auto_error=False, description="An admin, gateway or node credential.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


@dataclass(frozen=True)
class TokenPrincipal:
    token_id: str
    role: Role


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


async def require_node(session: Session, credentials: Credentials) -> Node:
    node = await session.scalar(
        select(Node).where(Node.credential_hash == hash_secret(_secret(credentials)))
    )
    if node is None:
        raise Unauthorized("unknown node credential")
    return node


Admin = Annotated[TokenPrincipal, Depends(require_admin)]
GatewayCaller = Annotated[TokenPrincipal, Depends(require_gateway)]
CallingNode = Annotated[Node, Depends(require_node)]
