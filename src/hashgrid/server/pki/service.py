"""The control plane's CA and its own server certificate, under `<home>/server/tls`."""

from fastapi import Request

from hashgrid.common.ca import CertificateAuthority, load_or_create_ca, write_issued
from hashgrid.common.serving import CertFiles
from hashgrid.common.tls import server_hosts
from hashgrid.server.errors import NotFound
from hashgrid.server.settings import ServerSettings

SERVER_CERT = "server.pem"
SERVER_KEY = "server-key.pem"


def authority(settings: ServerSettings) -> CertificateAuthority | None:
    """The CA, made at the first start with TLS on; None when TLS is off."""
    return load_or_create_ca(settings.tls_dir) if settings.tls_on else None


def server_certificate(settings: ServerSettings, ca: CertificateAuthority) -> CertFiles:
    """A fresh certificate for this server's listener (made at each start, so a new
    `--tls-host` or a new address counts at once)."""
    files = CertFiles(settings.tls_dir / SERVER_CERT, settings.tls_dir / SERVER_KEY)
    hosts = server_hosts(settings.host, settings.tls_hosts)
    write_issued(ca.issue("hashgrid control plane", hosts), files.cert, files.key)
    return files


def ca_of(request: Request) -> CertificateAuthority:
    """This server's CA; NotFound when it runs without TLS."""
    ca = getattr(request.app.state, "ca", None)
    if not isinstance(ca, CertificateAuthority):
        raise NotFound("this control plane runs without TLS: it has no certificate authority")
    return ca
