from fastapi import APIRouter, status

from hashgrid.contracts.api.catalog import ModelCreate, ModelOut
from hashgrid.server import pages
from hashgrid.server.catalog import service
from hashgrid.server.params import LongPathName
from hashgrid.server.policy import Caller
from hashgrid.server.state import Session

router = APIRouter(prefix="/api/v1/models", tags=["catalog"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def add_model(body: ModelCreate, session: Session, caller: Caller) -> ModelOut:
    """Add a model to the catalog."""
    return ModelOut.model_validate(await service.create(session, body))


@router.get("")
async def list_models(session: Session, caller: Caller, page: pages.WholePage) -> list[ModelOut]:
    """The catalog, by name."""
    found = await service.list_all(session, page.cursor, page.limit)
    page.link(found.next_cursor)
    return [ModelOut.model_validate(m) for m in found.items]


@router.get("/{name:path}")
async def get_model(name: LongPathName, session: Session, caller: Caller) -> ModelOut:
    return ModelOut.model_validate(await service.get(session, name))
