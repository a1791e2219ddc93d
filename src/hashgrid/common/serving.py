"""Serving an ASGI app the way every hashgrid HTTP process does."""

from typing import Any

import uvicorn


def serve(app: Any, host: str, port: int) -> None:
    """Run `app` on uvicorn with uvloop and httptools until SIGINT or SIGTERM."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=5,
    )
