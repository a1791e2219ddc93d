"""What a control plane needs before it serves: a migrated database, an admin, an operator."""

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hashgrid.common.paths import write_private
from hashgrid.contracts.api.organizations import OrgKind
from hashgrid.server.access import service as access
from hashgrid.server.organizations import service as organizations
from hashgrid.server.settings import ServerSettings

log = structlog.get_logger("hashgrid.server")


async def bootstrap(sessions: async_sessionmaker[AsyncSession], settings: ServerSettings) -> None:
    """Create the platform operator and, on first start, the admin token."""
    async with sessions() as session:
        await organizations.ensure(session, organizations.PLATFORM_OPERATOR, OrgKind.OPERATOR)
        secret = await access.ensure_admin(session, settings.bootstrap_admin_token)
    if secret is not None and settings.bootstrap_admin_token is None:
        path = settings.server_dir / "admin-token"
        write_private(path, secret + "\n")
        # Printed once, like a fresh cluster's join secret; only its hash is stored.
        print(f"hashgrid: admin token (also in {path}): {secret}", flush=True)
        log.info("admin token created", path=str(path))
