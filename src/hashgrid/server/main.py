"""`hashgrid server`: run the control plane in this process."""

import uvicorn

from hashgrid.common.logging import configure_logging
from hashgrid.server.app import create_app
from hashgrid.server.settings import ServerSettings


def run(settings: ServerSettings) -> None:
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
