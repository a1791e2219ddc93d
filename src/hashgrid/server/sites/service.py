"""Sites and their one-time join tokens."""

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.common.secrets import hash_secret, new_secret
from hashgrid.contracts.api.organizations import OrgKind
from hashgrid.contracts.api.sites import SiteCreate
from hashgrid.server import pages
from hashgrid.server.db.base import utcnow
from hashgrid.server.errors import Conflict, NotFound, Unauthorized
from hashgrid.server.organizations import service as organizations
from hashgrid.server.organizations.tables import Organization
from hashgrid.server.sites.tables import JoinToken, Site

JOIN_TOKEN_PREFIX = "hg_join_"


async def create(session: AsyncSession, body: SiteCreate, scope: str | None) -> Site:
    """A new site of `body.operator`: the caller's own organization when it sees one (`scope`),
    else the named operator or the platform's."""
    if await session.scalar(select(Site).where(Site.name == body.name)):
        raise Conflict(f"site {body.name!r} exists")
    if scope is None:
        name = body.operator or organizations.PLATFORM_OPERATOR
        operator = await organizations.get(session, name, OrgKind.OPERATOR)
    else:
        operator = await organizations.get_by_id(session, scope)
        if body.operator is not None and body.operator != operator.name:
            raise NotFound(f"no organization {body.operator!r}")
    site = Site(
        name=body.name,
        operator_id=operator.id,
        region=body.region,
        country=body.country,
        power_mw=body.power_mw,
    )
    session.add(site)
    await session.commit()
    return site


async def get(session: AsyncSession, name: str, scope: str | None = None) -> Site:
    """The site called `name`, if its operator is `scope` (None: any operator's)."""
    site = await session.scalar(select(Site).where(Site.name == name))
    if site is None or (scope is not None and site.operator_id != scope):
        raise NotFound(f"no site {name!r}")
    return site


ORDER = pages.Order(pages.By(Site.name))


async def list_visible(
    session: AsyncSession,
    scope: str | None,
    cursor: str | None,
    limit: int,
    region: str | None = None,
    operator: str | None = None,
) -> pages.Items[Site]:
    """A page of the sites of operator `scope` (None: every site), by name; only those in
    `region`, or of the operator named `operator`, if given."""
    query = select(Site)
    if scope is not None:
        query = query.where(Site.operator_id == scope)
    if region is not None:
        query = query.where(Site.region == region)
    if operator is not None:
        named = select(Organization.id).where(Organization.name == operator)
        query = query.where(Site.operator_id.in_(named.scalar_subquery()))
    return await pages.scalars(session, query, ORDER, cursor, limit)


async def create_join_token(session: AsyncSession, site: Site, ttl_s: int) -> tuple[JoinToken, str]:
    secret = new_secret(JOIN_TOKEN_PREFIX)
    row = JoinToken(
        site_id=site.id,
        token_hash=hash_secret(secret),
        expires_at=utcnow() + timedelta(seconds=ttl_s),
    )
    session.add(row)
    await session.commit()
    return row, secret


async def consume_join_token(session: AsyncSession, secret: str, node_id: str) -> Site:
    """Spend a join token on `node_id` (in the caller's transaction); the token's site.

    The update is conditional on the token being unused, so two agents racing with one token
    cannot both join.
    """
    now = utcnow()
    row = await session.scalar(select(JoinToken).where(JoinToken.token_hash == hash_secret(secret)))
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise Unauthorized("join token unknown, used or expired")
    spent = await session.execute(
        update(JoinToken)
        .where(JoinToken.id == row.id, JoinToken.used_at.is_(None))
        .values(used_at=now, used_by_node_id=node_id)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise Unauthorized("join token unknown, used or expired")
    site = await session.get(Site, row.site_id)
    assert site is not None
    return site
