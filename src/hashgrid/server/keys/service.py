"""Customer API keys: random secrets stored as SHA-256 digests, with optional limits."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.common.secrets import hash_secret, new_secret
from hashgrid.contracts.api.common import Limits
from hashgrid.contracts.api.organizations import OrgKind
from hashgrid.server import pages
from hashgrid.server.db.base import utcnow
from hashgrid.server.errors import Invalid, NotFound
from hashgrid.server.keys.tables import ApiKey
from hashgrid.server.organizations import service as organizations
from hashgrid.server.organizations.tables import Organization

KEY_PREFIX = "sk-hg-"


async def create(
    session: AsyncSession,
    customer: str | None,
    name: str,
    limits: Limits | None = None,
    scope: str | None = None,
) -> tuple[ApiKey, str]:
    """A key of `customer` (of `scope`, the caller's own organization, when it sees one)."""
    org = await _customer(session, customer, scope)
    limits = limits or Limits()
    _within(limits, org)
    secret = new_secret(KEY_PREFIX)
    key = ApiKey(
        customer_id=org.id,
        name=name,
        key_hash=hash_secret(secret),
        prefix=secret[: len(KEY_PREFIX) + 4],
    )
    key.set_limits(limits)
    session.add(key)
    await session.commit()
    return key, secret


async def _customer(session: AsyncSession, name: str | None, scope: str | None) -> Organization:
    if scope is None:
        if name is None:
            raise Invalid("customer: say which customer organization the key is for")
        return await organizations.get(session, name, OrgKind.CUSTOMER)
    org = await organizations.get_by_id(session, scope)
    if name is not None and name != org.name:
        raise NotFound(f"no organization {name!r}")
    return org


def _within(limits: Limits, org: Organization) -> None:
    """A key's limits may not exceed its organization's (both hold on every request anyway: a
    higher one would only mislead)."""
    theirs_all = org.limits
    for kind, own, theirs in (
        ("rpm", limits.rpm, theirs_all.rpm),
        ("tpm", limits.tpm, theirs_all.tpm),
        ("monthly_budget_usd", limits.monthly_budget_usd, theirs_all.monthly_budget_usd),
    ):
        if theirs is not None and (own is None or own > theirs):
            raise Invalid(f"limits.{kind}: the organization allows {theirs} at most")


async def get(session: AsyncSession, key_id: str, scope: str | None = None) -> ApiKey:
    """The key `key_id`, if it is of customer `scope` (None: of any customer)."""
    key = await session.get(ApiKey, key_id)
    if key is None or (scope is not None and key.customer_id != scope):
        raise NotFound(f"no key {key_id!r}")
    return key


ORDER = pages.Order(pages.By(ApiKey.created_at), pages.By(ApiKey.id))  # oldest first


async def list_visible(
    session: AsyncSession,
    scope: str | None,
    cursor: str | None,
    limit: int,
    revoked: bool | None = None,
    customer: str | None = None,
) -> pages.Items[ApiKey]:
    """A page of the keys of customer `scope` (None: every key), oldest first; only the revoked
    or the live ones when `revoked` says, only those of the customer named `customer` if given."""
    query = select(ApiKey)
    if scope is not None:
        query = query.where(ApiKey.customer_id == scope)
    if revoked is not None:
        query = query.where(
            ApiKey.revoked_at.is_not(None) if revoked else ApiKey.revoked_at.is_(None)
        )
    if customer is not None:
        named = select(Organization.id).where(Organization.name == customer)
        query = query.where(ApiKey.customer_id.in_(named.scalar_subquery()))
    return await pages.scalars(session, query, ORDER, cursor, limit)


async def set_limits(
    session: AsyncSession, key_id: str, limits: Limits, scope: str | None = None
) -> ApiKey:
    """Replace a key's limits (a kind left null has no limit)."""
    key = await get(session, key_id, scope)
    org = await organizations.get_by_id(session, key.customer_id)
    _within(limits, org)
    key.set_limits(limits)
    await session.commit()
    return key


async def revoke(session: AsyncSession, key_id: str, scope: str | None = None) -> None:
    key = await get(session, key_id, scope)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.commit()
