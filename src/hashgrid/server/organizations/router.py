from fastapi import APIRouter, status

from hashgrid.server.auth import Admin
from hashgrid.server.organizations import service
from hashgrid.server.organizations.schemas import OrganizationCreate, OrganizationOut
from hashgrid.server.state import Session

router = APIRouter(prefix="/api/v1/organizations", tags=["organizations"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_organization(
    body: OrganizationCreate, session: Session, _: Admin
) -> OrganizationOut:
    """Create an operator (runs sites) or a customer (sends requests)."""
    return OrganizationOut.model_validate(await service.create(session, body.name, body.kind))


@router.get("")
async def list_organizations(session: Session, _: Admin) -> list[OrganizationOut]:
    return [OrganizationOut.model_validate(o) for o in await service.list_all(session)]


@router.get("/{name}")
async def get_organization(name: str, session: Session, _: Admin) -> OrganizationOut:
    return OrganizationOut.model_validate(await service.get(session, name))
