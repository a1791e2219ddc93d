"""`hashgrid server`: run the control plane in this process."""

from hashgrid.common.ca import CA_CERT
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
    tls = None
    if ca is not None:
        tls = pki.server_certificate(settings, ca)
        # Beside the admin token it prints: what an operator hands to the CLI and to gateways.
        print(
            f"serving https: CA {ca.hash} ({settings.tls_dir / CA_CERT}); join tokens carry "
            "its hash, the CLI and gateways take --ca-file or --ca-hash",
            flush=True,
        )
    serve(app, settings.host, settings.port, settings, tls)
