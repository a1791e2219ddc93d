"""The control plane's certificate authority: its key and certificate, and the certificates it
issues (its own server's, gateways' from their certificate requests).

An ECDSA P-256 key made at the control plane's first start with TLS on, kept under its home
(`<home>/server/tls/ca-key.pem`, 0600), ten years valid; leaves are valid a year and made again
at each start (the server's) or on each gateway's start (its own). Only the control plane and
gateways import this module (and with it `cryptography`): agents need only common/tls.py.
"""

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hashgrid.common.paths import private_dir, write_private
from hashgrid.common.tls import ca_hash

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
CA_DAYS = 10 * 365
LEAF_DAYS = 365


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class CertificateAuthority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def hash(self) -> str:
        return ca_hash(self.cert_pem)

    def issue(
        self, name: str, hosts: list[str], *, server: bool = True, client: bool = False
    ) -> Issued:
        """A new key and a certificate for it, valid for `hosts` (DNS names or IP addresses)."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.sign(key.public_key(), name, hosts, server=server, client=client)
        return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def sign_request(self, csr_pem: bytes, *, server: bool = True) -> bytes:
        """The certificate (PEM) for a certificate signing request: its key, its subject's
        common name and its SANs. Raises ValueError on a request that is not well signed."""
        csr = x509.load_pem_x509_csr(csr_pem)
        if not csr.is_signature_valid:
            raise ValueError("the certificate request's signature does not verify")
        public = csr.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise ValueError("the certificate request's key is not an elliptic-curve key")
        names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        name = str(names[0].value) if names else "hashgrid"
        try:
            sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            hosts = [str(v) for v in sans.get_values_for_type(x509.DNSName)]
            hosts += [str(v) for v in sans.get_values_for_type(x509.IPAddress)]
        except x509.ExtensionNotFound:
            hosts = []
        if not hosts:
            raise ValueError("the certificate request names no host (subject alternative name)")
        cert = self.sign(public, name, hosts, server=server)
        return cert.public_bytes(serialization.Encoding.PEM)

    def sign(
        self,
        public: ec.EllipticCurvePublicKey,
        name: str,
        hosts: list[str],
        *,
        server: bool = True,
        client: bool = False,
    ) -> x509.Certificate:
        now = datetime.datetime.now(datetime.UTC)
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))  # clocks a little apart
            .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_encipherment=False,
                    content_commitment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if hosts:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(h) for h in dict.fromkeys(hosts)]),
                critical=False,
            )
        return builder.sign(self.key, hashes.SHA256())


def load_or_create_ca(
    folder: Path, name: str = "hashgrid control plane CA"
) -> CertificateAuthority:
    """The CA kept in `folder` (`ca.pem`, `ca-key.pem`), made there first if missing."""
    cert_path, key_path = folder / CA_CERT, folder / CA_KEY
    if cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path} does not hold an elliptic-curve key")
        return CertificateAuthority(x509.load_pem_x509_certificate(cert_path.read_bytes()), key)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    private_dir(folder)
    write_private(key_path, _key_pem(key).decode())  # the key first: a cert alone is useless
    write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM).decode())
    return CertificateAuthority(cert, key)


def write_issued(issued: Issued, cert_path: Path, key_path: Path) -> None:
    private_dir(key_path.parent)
    write_private(key_path, issued.key_pem.decode())
    write_private(cert_path, issued.cert_pem.decode())


def new_key_and_request(name: str, hosts: list[str]) -> tuple[bytes, bytes]:
    """A new key (PEM) and a certificate signing request for it naming `hosts` (PEM): the key
    stays with its owner; the CA signs the request."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    )
    if hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(h) for h in dict.fromkeys(hosts)]),
            critical=False,
        )
    csr = builder.sign(key, hashes.SHA256())
    return _key_pem(key), csr.public_bytes(serialization.Encoding.PEM)


def expires_within(cert_pem: bytes, days: float) -> bool:
    cert = x509.load_pem_x509_certificate(cert_pem)
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return left < datetime.timedelta(days=days)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)
