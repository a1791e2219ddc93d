from fastapi import APIRouter

from hashgrid.server.auth import Admin
from hashgrid.server.nodes import service
from hashgrid.server.nodes.schemas import NodeOut
from hashgrid.server.state import Session

router = APIRouter(prefix="/api/v1/nodes", tags=["nodes"])


@router.get("")
async def list_nodes(session: Session, _: Admin) -> list[NodeOut]:
    return [service.to_out(n, s) for n, s in await service.list_all(session)]


@router.get("/{node}")
async def get_node(node: str, session: Session, _: Admin) -> NodeOut:
    """A node by id or name."""
    return service.to_out(*await service.get(session, node))
