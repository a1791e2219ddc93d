"""Admin and gateway tokens."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.common.secrets import hash_secret, new_secret
from hashgrid.contracts.api.access import Role
from hashgrid.server.access.tables import AccessToken

PREFIX = {Role.ADMIN: "hg_admin_", Role.GATEWAY: "hg_gw_"}


async def create(
    session: AsyncSession, name: str, role: Role, secret: str | None = None
) -> tuple[AccessToken, str]:
    """A new token and its secret, which is not stored and cannot be shown again."""
    secret = secret or new_secret(PREFIX[role])
    row = AccessToken(name=name, role=role, token_hash=hash_secret(secret))
    session.add(row)
    await session.commit()
    return row, secret


async def ensure_admin(session: AsyncSession, bootstrap: str | None) -> str | None:
    """Make the first admin token if none exists; return its secret, or None if one existed."""
    exists = await session.scalar(
        select(AccessToken.id).where(AccessToken.role == Role.ADMIN).limit(1)
    )
    if exists is not None:
        return None
    _, secret = await create(session, "admin", Role.ADMIN, bootstrap)
    return secret
