"""Serving an ASGI app the way every hashgrid HTTP process does."""

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from hashgrid.common.connection_limits import ConnectionLimits
from hashgrid.common.connections import protocol_for
from hashgrid.common.tls import MIN_VERSION


@dataclass(frozen=True)
class CertFiles:
    """A listener's certificate and its key, PEM files."""

    cert: Path
    key: Path


class _Config(uvicorn.Config):
    def load(self) -> None:
        super().load()
        if isinstance(self.ssl, ssl.SSLContext):
            self.ssl.minimum_version = MIN_VERSION  # uvicorn sets none; TLS 1.2 at least


def server_config(
    app: Any, host: str, port: int, limits: ConnectionLimits, tls: CertFiles | None = None
) -> uvicorn.Config:
    """uvicorn with uvloop and httptools, its connections bounded by `limits` (connections.py);
    HTTPS with `tls`'s certificate when given."""
    return _Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        loop="uvloop",
        http=protocol_for(limits),
        ws="none",  # no hashgrid process serves WebSockets: no upgrade to read past the limits
        timeout_graceful_shutdown=5,
        ssl_certfile=str(tls.cert) if tls else None,
        ssl_keyfile=str(tls.key) if tls else None,
    )


def serve(
    app: Any, host: str, port: int, limits: ConnectionLimits, tls: CertFiles | None = None
) -> None:
    """Run `app` until SIGINT or SIGTERM."""
    uvicorn.Server(server_config(app, host, port, limits, tls)).run()
