from typing import Annotated

from fastapi import APIRouter, Request, status

from hashgrid.common.tls import with_ca_hash
from hashgrid.contracts.api.sites import JoinTokenCreate, JoinTokenCreated, SiteCreate, SiteOut
from hashgrid.server import pages
from hashgrid.server.params import PathName, filter_by
from hashgrid.server.policy import Caller
from hashgrid.server.reliability import service as reliability
from hashgrid.server.reliability.tables import ReliabilityScore
from hashgrid.server.sites import service
from hashgrid.server.sites.tables import Site
from hashgrid.server.state import Session

router = APIRouter(prefix="/api/v1/sites", tags=["sites"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_site(body: SiteCreate, session: Session, caller: Caller) -> SiteOut:
    """Create a site: a place with a power budget where GPU nodes join."""
    return SiteOut.model_validate(await service.create(session, body, caller.scope))


@router.get("")
async def list_sites(
    session: Session,
    caller: Caller,
    page: pages.WholePage,
    region: Annotated[str | None, filter_by("Only the sites in this region")] = None,
    operator: Annotated[str | None, filter_by("Only this operator's sites")] = None,
) -> list[SiteOut]:
    """The sites, by name."""
    found = await service.list_visible(
        session, caller.scope, page.cursor, page.limit, region, operator
    )
    page.link(found.next_cursor)
    scores = await reliability.scores(session, reliability.SITE, (s.id for s in found.items))
    return [_out(s, scores) for s in found.items]


@router.get("/{name}")
async def get_site(name: PathName, session: Session, caller: Caller) -> SiteOut:
    """A site by name, with its nodes' reliability counted together."""
    site = await service.get(session, name, caller.scope)
    return _out(site, await reliability.scores(session, reliability.SITE, [site.id]))


def _out(site: Site, scores: dict[str, ReliabilityScore]) -> SiteOut:
    out = SiteOut.model_validate(site)
    out.reliability = reliability.reliability_out(scores.get(site.id))
    return out


@router.post("/{name}/join-tokens", status_code=status.HTTP_201_CREATED)
async def create_join_token(
    name: PathName,
    session: Session,
    caller: Caller,
    request: Request,
    body: JoinTokenCreate | None = None,
) -> JoinTokenCreated:
    """A one-time token an agent trades for a node credential at this site. Shown once.
    With TLS on, it carries the hash of the control plane's CA, which the agent pins."""
    site = await service.get(session, name, caller.scope)
    row, secret = await service.create_join_token(session, site, (body or JoinTokenCreate()).ttl_s)
    ca = request.app.state.ca
    token = with_ca_hash(secret, ca.hash) if ca is not None else secret
    return JoinTokenCreated(site=site.name, token=token, expires_at=row.expires_at)
