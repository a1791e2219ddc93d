from fastapi import APIRouter, status

from hashgrid.server.auth import Admin
from hashgrid.server.deployments import service
from hashgrid.server.deployments.schemas import DeploymentCreate, DeploymentOut, DeploymentScale
from hashgrid.server.state import Session, State

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_deployment(
    body: DeploymentCreate, session: Session, state: State, _: Admin
) -> DeploymentOut:
    """Ask for a model to be served; placement starts at once."""
    deployment = await service.create(session, body)
    await state.changes.bump()
    return await service.to_out(session, deployment)


@router.get("")
async def list_deployments(session: Session, _: Admin) -> list[DeploymentOut]:
    return [await service.to_out(session, d) for d in await service.list_all(session)]


@router.get("/{name:path}")
async def get_deployment(name: str, session: Session, _: Admin) -> DeploymentOut:
    return await service.to_out(session, await service.get(session, name))


@router.patch("/{name:path}")
async def scale_deployment(
    name: str, body: DeploymentScale, session: Session, state: State, _: Admin
) -> DeploymentOut:
    deployment = await service.get(session, name)
    await service.scale(session, deployment, body.replicas)
    await state.changes.bump()
    return await service.to_out(session, deployment)


@router.delete("/{name:path}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_deployment(name: str, session: Session, state: State, _: Admin) -> None:
    await service.delete(session, await service.get(session, name))
    await state.changes.bump()
