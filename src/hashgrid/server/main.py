"""`hashgrid server`: run the control plane in this process."""

from hashgrid.common.logging import configure_logging
from hashgrid.common.paths import keep_private
from hashgrid.common.serving import serve
from hashgrid.server.app import create_app
from hashgrid.server.pki import service as pki
from hashgrid.server.settings import ServerSettings


def run(settings: ServerSettings) -> None:
    keep_private()
    configure_logging(settings.log_level)
    app = create_app(settings)
    ca = app.state.ca
    tls = pki.server_certificate(settings, ca) if ca is not None else None
    serve(app, settings.host, settings.port, settings, tls)
