"""Serving an ASGI app the way every hashgrid HTTP process does."""

from typing import Any

import uvicorn

from hashgrid.common.connection_limits import ConnectionLimits
from hashgrid.common.connections import protocol_for


def server_config(app: Any, host: str, port: int, limits: ConnectionLimits) -> uvicorn.Config:
    """uvicorn with uvloop and httptools, its connections bounded by `limits` (connections.py)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        loop="uvloop",
        http=protocol_for(limits),
        ws="none",  # no hashgrid process serves WebSockets: no upgrade to read past the limits
        timeout_graceful_shutdown=5,
    )


def serve(app: Any, host: str, port: int, limits: ConnectionLimits) -> None:
    """Run `app` until SIGINT or SIGTERM."""
    uvicorn.Server(server_config(app, host, port, limits)).run()
