"""`hashgrid gateway`: serve `/v1` in this process."""

from hashgrid.common.logging import configure_logging
from hashgrid.common.paths import keep_private
from hashgrid.common.serving import serve
from hashgrid.gateway.app import create_app
from hashgrid.gateway.settings import GatewaySettings


def run(settings: GatewaySettings) -> None:
    keep_private()
    configure_logging(settings.log_level)
    serve(create_app(settings), settings.host, settings.port, settings)
