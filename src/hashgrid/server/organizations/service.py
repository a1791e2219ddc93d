"""Creating and finding organizations."""

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.contracts.api.common import Limits
from hashgrid.contracts.api.organizations import OrgKind
from hashgrid.server import pages
from hashgrid.server.errors import Conflict, Invalid, NotFound
from hashgrid.server.organizations.tables import Organization

PLATFORM_OPERATOR = "platform"


async def create(session: AsyncSession, name: str, kind: OrgKind) -> Organization:
    if await session.scalar(select(Organization).where(Organization.name == name)):
        raise Conflict(f"organization {name!r} exists")
    org = Organization(name=name, kind=kind)
    session.add(org)
    await session.commit()
    return org


async def ensure(session: AsyncSession, name: str, kind: OrgKind) -> Organization:
    """The organization called `name`, created if missing."""
    org = await session.scalar(select(Organization).where(Organization.name == name))
    if org is None:
        org = Organization(name=name, kind=kind)
        session.add(org)
        await session.commit()
    return org


async def get(session: AsyncSession, name: str, kind: OrgKind | None = None) -> Organization:
    org = await session.scalar(select(Organization).where(Organization.name == name))
    if org is None:
        raise NotFound(f"no organization {name!r}")
    if kind is not None and org.kind != kind:
        raise Invalid(f"organization {name!r} is a {org.kind}, not a {kind}")
    return org


async def get_by_id(session: AsyncSession, organization_id: str) -> Organization:
    org = await session.get(Organization, organization_id)
    if org is None:
        raise NotFound(f"no organization {organization_id!r}")
    return org


async def names_of(session: AsyncSession, organization_ids: Iterable[str]) -> dict[str, str]:
    """The names of these organizations, by id."""
    found = await session.execute(
        select(Organization.id, Organization.name).where(Organization.id.in_(set(organization_ids)))
    )
    return {org_id: name for org_id, name in found}


async def get_visible(session: AsyncSession, name: str, scope: str | None) -> Organization:
    """The organization called `name`, if a caller seeing `scope` may see it (None: any); a
    hidden one is as absent as a missing one."""
    org = await session.scalar(select(Organization).where(Organization.name == name))
    if org is None or (scope is not None and org.id != scope):
        raise NotFound(f"no organization {name!r}")
    return org


async def set_limits(session: AsyncSession, name: str, limits: Limits) -> Organization:
    """Replace a customer's limits, which hold over all its keys together."""
    org = await get(session, name, OrgKind.CUSTOMER)
    org.set_limits(limits)
    await session.commit()
    return org


ORDER = pages.Order(pages.By(Organization.name))


async def list_visible(
    session: AsyncSession,
    scope: str | None,
    cursor: str | None,
    limit: int,
    kind: OrgKind | None = None,
) -> pages.Items[Organization]:
    """A page of the organizations a caller seeing `scope` may see (None: all), by name; only
    those of `kind` if given."""
    query = select(Organization)
    if scope is not None:
        query = query.where(Organization.id == scope)
    if kind is not None:
        query = query.where(Organization.kind == kind)
    return await pages.scalars(session, query, ORDER, cursor, limit)
