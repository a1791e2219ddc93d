"""Customer API keys: random secrets stored as SHA-256 digests, with optional limits."""

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.common.secrets import hash_secret, new_secret
from hashgrid.contracts.api.common import Limits
from hashgrid.contracts.api.organizations import OrgKind
from hashgrid.server.db.base import utcnow
from hashgrid.server.errors import NotFound
from hashgrid.server.keys.tables import ApiKey
from hashgrid.server.organizations import service as organizations

KEY_PREFIX = "sk-hg-"


async def create(
    session: AsyncSession, customer: str, name: str, limits: Limits | None = None
) -> tuple[ApiKey, str]:
    org = await organizations.get(session, customer, OrgKind.CUSTOMER)
    secret = new_secret(KEY_PREFIX)
    key = ApiKey(
        customer_id=org.id,
        name=name,
        key_hash=hash_secret(secret),
        prefix=secret[: len(KEY_PREFIX) + 4],
    )
    limits = limits or Limits()
    key.set_limits(limits.rpm, limits.tpm, limits.monthly_budget_usd)
    session.add(key)
    await session.commit()
    return key, secret


async def get(session: AsyncSession, key_id: str) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"no key {key_id!r}")
    return key


async def list_all(session: AsyncSession) -> Sequence[ApiKey]:
    return (await session.scalars(select(ApiKey).order_by(ApiKey.created_at))).all()


async def set_limits(session: AsyncSession, key_id: str, limits: Limits) -> ApiKey:
    """Replace a key's limits (a kind left null has no limit)."""
    key = await get(session, key_id)
    key.set_limits(limits.rpm, limits.tpm, limits.monthly_budget_usd)
    await session.commit()
    return key


async def revoke(session: AsyncSession, key_id: str) -> None:
    key = await get(session, key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.commit()
