"""Customer API keys: random secrets stored as SHA-256 digests."""

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.common.secrets import hash_secret, new_secret
from hashgrid.server.db.base import utcnow
from hashgrid.server.errors import NotFound
from hashgrid.server.keys.tables import ApiKey
from hashgrid.server.organizations import service as organizations
from hashgrid.server.organizations.tables import OrgKind

KEY_PREFIX = "sk-hg-"


async def create(session: AsyncSession, customer: str, name: str) -> tuple[ApiKey, str]:
    org = await organizations.get(session, customer, OrgKind.CUSTOMER)
    secret = new_secret(KEY_PREFIX)
    key = ApiKey(
        customer_id=org.id,
        name=name,
        key_hash=hash_secret(secret),
        prefix=secret[: len(KEY_PREFIX) + 4],
    )
    session.add(key)
    await session.commit()
    return key, secret


async def list_all(session: AsyncSession) -> Sequence[ApiKey]:
    return (await session.scalars(select(ApiKey).order_by(ApiKey.created_at))).all()


async def revoke(session: AsyncSession, key_id: str) -> None:
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"no key {key_id!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.commit()
