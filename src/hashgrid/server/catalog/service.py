"""The model catalog."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.server import pages
from hashgrid.server.catalog.tables import CatalogModel
from hashgrid.server.errors import Conflict, NotFound


async def create(session: AsyncSession, body: ModelCreate) -> CatalogModel:
    if await session.scalar(select(CatalogModel).where(CatalogModel.name == body.name)):
        raise Conflict(f"model {body.name!r} is in the catalog already")
    model = CatalogModel(**body.model_dump())  # the architecture, a dict, is stored as JSON
    session.add(model)
    await session.commit()
    return model


async def get(session: AsyncSession, name: str) -> CatalogModel:
    model = await session.scalar(select(CatalogModel).where(CatalogModel.name == name))
    if model is None:
        raise NotFound(f"no model {name!r} in the catalog")
    return model


ORDER = pages.Order(pages.By(CatalogModel.name))


async def list_all(
    session: AsyncSession, cursor: str | None, limit: int
) -> pages.Items[CatalogModel]:
    """A page of the catalog, by name."""
    return await pages.scalars(session, select(CatalogModel), ORDER, cursor, limit)
