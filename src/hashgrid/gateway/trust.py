"""The gateway's side of TLS: the control plane's CA it trusts, and the certificate it serves.

The CA comes as a file (`ca_file`), or is fetched once and checked by hash (`ca_hash`), then
pinned at `<home>/ca.pem`, as an agent pins it at join. With its gateway token the gateway asks
the control plane's CA for a certificate for its listeners (its /v1 port, and the tunnel port
agents dial): the key is made here and never leaves; the control plane signs a certificate
request naming the gateway's hosts (`POST /api/v1/gateway/certificate`). It is asked for again
at each start; a control plane that is away then leaves the last one in use.
"""

import ssl
from dataclasses import dataclass

import httpx

from hashgrid.common.paths import private_dir, write_private
from hashgrid.common.serving import CertFiles
from hashgrid.common.tls import client_context, pin_ca, server_context, server_hosts
from hashgrid.contracts.api.tls import CertificateIssued, CertificateRequest
from hashgrid.gateway.settings import GatewaySettings

CERT_FILE = "gateway.pem"
KEY_FILE = "gateway-key.pem"
RENEW_WITHIN_DAYS = 30.0


class NoCertificate(Exception):
    """TLS is wanted and the gateway has no certificate to serve, saying why."""


@dataclass(frozen=True)
class GatewayTls:
    ca_pem: bytes | None  # the control plane's CA; None: a control plane over plain http
    certificate: CertFiles | None  # the gateway's own, from that CA

    def control_plane_context(self) -> ssl.SSLContext | None:
        """What the gateway's calls to the control plane are verified by."""
        return client_context(self.ca_pem) if self.ca_pem is not None else None

    def tunnel_server_context(self) -> ssl.SSLContext | None:
        """The SSL context of the gateway's tunnel listener (agents verify it against the
        control plane's CA); None when the gateway has no certificate (plain-http control
        plane)."""
        if self.certificate is None:
            return None
        return server_context(self.certificate.cert, self.certificate.key)


def tunnel_url(settings: GatewaySettings, tls: bool) -> str:
    """The URL nodes dial this gateway's tunnel at: `wss://` when it serves TLS, unless the
    operator gave one (`tunnel_url`, e.g. behind a TLS-terminating balancer)."""
    url = settings.advertised_tunnel_url
    if tls and settings.tunnel_url is None:
        return "wss://" + url.removeprefix("ws://")
    return url


def control_plane_ca(settings: GatewaySettings) -> bytes | None:
    """The control plane's CA (PEM); None over plain http. NoCertificate if none is given."""
    if not settings.server_url.startswith("https://"):
        return None
    if settings.ca_file is not None:
        return settings.ca_file.read_bytes()
    ca = pin_ca(settings.ca_path, settings.server_url, settings.ca_hash)
    if ca is None:
        raise NoCertificate(
            f"{settings.server_url} serves TLS: pass --ca-file (the server's "
            "<home>/server/tls/ca.pem) or --ca-hash sha256:... (the server prints it)"
        )
    return ca


def prepare(settings: GatewaySettings) -> GatewayTls:
    """The CA to trust and a certificate from it: what every TLS hop of the gateway needs."""
    ca = control_plane_ca(settings)
    if ca is None:
        if settings.tls_on:
            raise NoCertificate(
                f"the gateway serves TLS on {settings.host}, and its control plane "
                f"({settings.server_url}) runs without it, so no CA can issue its certificate: "
                "run the control plane with TLS (an https --server), or the gateway with "
                "--insecure"
            )
        return GatewayTls(None, None)
    return GatewayTls(ca, certificate(settings, ca))


def certificate(settings: GatewaySettings, ca_pem: bytes) -> CertFiles:
    """A certificate for this gateway's listeners, asked of the control plane with its token;
    the one kept from before if the control plane cannot be reached and it is still good.
    NoCertificate if the control plane refuses (a token that is not a gateway's)."""
    # `cryptography` only in a gateway that needs a certificate: not in every gateway's memory.
    from hashgrid.common.ca import new_key_and_request

    files = CertFiles(settings.tls_dir / CERT_FILE, settings.tls_dir / KEY_FILE)
    hosts = server_hosts(settings.host, settings.tls_hosts)
    key_pem, csr = new_key_and_request("hashgrid gateway", hosts)
    try:
        r = httpx.post(
            settings.server_url.rstrip("/") + "/api/v1/gateway/certificate",
            json=CertificateRequest(csr=csr.decode()).model_dump(),
            headers={"authorization": f"Bearer {settings.token}"},
            verify=client_context(ca_pem),
            timeout=10.0,
        )
    except httpx.TransportError as e:
        if _still_good(files):
            return files
        raise NoCertificate(f"cannot reach the control plane for a certificate: {e}") from e
    if r.status_code != 200:
        raise NoCertificate(f"the control plane refused a certificate: {r.status_code} {r.text}")
    issued = CertificateIssued.model_validate(r.json())
    private_dir(settings.tls_dir)
    write_private(files.key, key_pem.decode())
    write_private(files.cert, issued.certificate)
    return files


def _still_good(files: CertFiles) -> bool:
    from hashgrid.common.ca import expires_within

    try:
        return files.key.exists() and not expires_within(files.cert.read_bytes(), RENEW_WITHIN_DAYS)
    except (OSError, ValueError):
        return False
