"""`hashgrid gateway`: serve `/v1` in this process."""

from hashgrid.common.logging import configure_logging
from hashgrid.common.paths import keep_private
from hashgrid.common.serving import serve
from hashgrid.gateway.app import create_app
from hashgrid.gateway.settings import GatewaySettings


def run(settings: GatewaySettings) -> None:
    keep_private()
    configure_logging(settings.log_level)
    app = create_app(settings)
    tls = app.state.tls  # gateway/trust.py: the CA and this gateway's certificate
    serve(app, settings.host, settings.port, settings, tls.certificate if settings.tls_on else None)
