from typing import Annotated

from fastapi import APIRouter, Query, status

from hashgrid.contracts.api.deployments import (
    DeploymentChange,
    DeploymentCreate,
    DeploymentOut,
    ReplicaOut,
)
from hashgrid.contracts.bounds import NO_NUL
from hashgrid.contracts.states import ReplicaStatus
from hashgrid.server import pages
from hashgrid.server.deployments import service
from hashgrid.server.params import LongPathName
from hashgrid.server.policy import Caller
from hashgrid.server.principal import Principal
from hashgrid.server.state import Session, State

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"])
replicas_router = APIRouter(prefix="/api/v1/replicas", tags=["deployments"])


@replicas_router.get("")
async def list_replicas(
    session: Session,
    state: State,
    caller: Caller,
    page: pages.WholePage,
    deployment: Annotated[
        str | None, Query(max_length=200, pattern=NO_NUL, description="Deployment name")
    ] = None,
    node: Annotated[
        str | None, Query(max_length=100, pattern=NO_NUL, description="Node id")
    ] = None,
    status: Annotated[ReplicaStatus | None, Query()] = None,
) -> list[ReplicaOut]:
    """Replicas, newest first, in every status (stopped and failed ones too), each with the
    engine load its node last reported (`load`, null when none is fresh)."""
    deployment_id = (await service.get(session, deployment)).id if deployment else None
    found = await service.list_replicas(
        session, deployment_id, node, status, page.cursor, page.limit
    )
    page.link(found.next_cursor)
    loads = state.loads
    return [service.replica_out(r, loads) for r in found.items]


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_deployment(
    body: DeploymentCreate, session: Session, state: State, caller: Caller
) -> DeploymentOut:
    """Ask for a model to be served; placement starts at once."""
    deployment = await service.create(session, body)
    await state.changes.bump()
    return await service.to_out(session, deployment)


@router.get("")
async def list_deployments(
    session: Session,
    state: State,
    caller: Caller,
    page: pages.Page,
    model: Annotated[
        str | None, Query(max_length=200, pattern=NO_NUL, description="Of this catalog model")
    ] = None,
    customer: Annotated[
        str | None,
        Query(max_length=100, pattern=NO_NUL, description="Private to this customer"),
    ] = None,
) -> list[DeploymentOut]:
    """Deployments by name: a customer's callers find the public ones and their own private
    ones (without the replicas that serve them), the platform admin every one."""
    found = await service.list_visible(
        session, caller.scope, page.cursor, page.limit, model, customer
    )
    page.link(found.next_cursor)
    return [_shown(caller, await service.to_out(session, d, state.loads)) for d in found.items]


@router.get("/{name:path}")
async def get_deployment(
    name: LongPathName, session: Session, state: State, caller: Caller
) -> DeploymentOut:
    """A deployment with its active replicas, each with its engine load where reported (the
    platform admin's answer); another customer's private deployment is a 404, as a missing one."""
    deployment = await service.get(session, name, caller.scope)
    return _shown(caller, await service.to_out(session, deployment, state.loads))


def _shown(caller: Principal, out: DeploymentOut) -> DeploymentOut:
    return out if caller.sees_all else service.as_customers_see_it(out)


@router.patch("/{name:path}")
async def change_deployment(
    name: LongPathName, body: DeploymentChange, session: Session, state: State, caller: Caller
) -> DeploymentOut:
    """Change a deployment. Size: `replicas` alone fixes it; `min_replicas`/`max_replicas` (and
    the targets) let the autoscaler move it. What replicas run (`model`, `engine`,
    `tensor_parallel_size`, `gpu_type`, `regions`) starts a new generation, rolled out a
    replica at a time while the old ones serve."""
    deployment = await service.get(session, name)
    await service.change(session, deployment, body)
    await state.changes.bump()
    return await service.to_out(session, deployment, state.loads)


@router.delete("/{name:path}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_deployment(
    name: LongPathName, session: Session, state: State, caller: Caller
) -> None:
    await service.delete(session, await service.get(session, name))
    await state.changes.bump()
