from fastapi import APIRouter, status

from hashgrid.server.auth import Admin
from hashgrid.server.catalog import service
from hashgrid.server.catalog.schemas import ModelCreate, ModelOut
from hashgrid.server.state import Session

router = APIRouter(prefix="/api/v1/models", tags=["catalog"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def add_model(body: ModelCreate, session: Session, _: Admin) -> ModelOut:
    """Add a model to the catalog."""
    return ModelOut.model_validate(await service.create(session, body))


@router.get("")
async def list_models(session: Session, _: Admin) -> list[ModelOut]:
    return [ModelOut.model_validate(m) for m in await service.list_all(session)]


@router.get("/{name:path}")
async def get_model(name: str, session: Session, _: Admin) -> ModelOut:
    return ModelOut.model_validate(await service.get(session, name))
