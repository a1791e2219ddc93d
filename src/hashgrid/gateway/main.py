"""`hashgrid gateway`: serve `/v1` in this process."""

import uvicorn

from hashgrid.common.logging import configure_logging
from hashgrid.gateway.app import create_app
from hashgrid.gateway.settings import GatewaySettings


def run(settings: GatewaySettings) -> None:
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=5,
    )
