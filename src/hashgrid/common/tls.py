"""TLS between hashgrid's processes: the SSL contexts every hop uses, and trusting the control
plane's CA by its hash (the CA itself, which only the control plane holds: common/ca.py).

The control plane is the CA (as kubeadm's control plane is a cluster's). Agents, gateways and
the CLI trust only that CA: they fetch its certificate once, check it against a hash given out
of band (the join token carries it, like `kubeadm join --discovery-token-ca-cert-hash`), and pin
it under their home.

A CA's hash is `sha256:` and the hex SHA-256 of its public key (SubjectPublicKeyInfo, DER), as
kubeadm's: a CA certificate re-issued with the same key keeps its hash. It is read from the
certificate's DER here without `cryptography`, which keeps that library out of every agent's
memory.
"""

import hashlib
import http.client
import ipaddress
import socket
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from hashgrid.common.paths import write_private

HASH_PREFIX = "sha256:"
# A join token that carries its CA's hash: `hg_join_<secret>.<64 hex>` ("." is not in a
# token_urlsafe secret).
JOIN_HASH_SEPARATOR = "."
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
MIN_VERSION = ssl.TLSVersion.TLSv1_2


class UntrustedCA(Exception):
    """A CA certificate whose hash is not the one given: a stranger, or a mistyped hash."""


def ca_hash(cert_pem: bytes) -> str:
    """`sha256:<hex>` of the certificate's public key (SubjectPublicKeyInfo, DER).
    ValueError if `cert_pem` is not a PEM certificate."""
    try:
        der = ssl.PEM_cert_to_DER_cert(cert_pem.decode("ascii"))
        return HASH_PREFIX + hashlib.sha256(_spki(der)).hexdigest()
    except (UnicodeDecodeError, IndexError) as e:
        raise ValueError(f"not a PEM certificate: {e}") from e


def normalized_hash(value: str) -> str:
    """A CA hash as given by hand (`sha256:HEX` or `HEX`, any case) in its one spelling."""
    value = value.strip().lower().removeprefix(HASH_PREFIX)
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"not a CA hash (sha256:<64 hex digits>): {value!r}")
    return HASH_PREFIX + value


def check_ca(cert_pem: bytes, expected: str) -> None:
    """Raise UntrustedCA unless `cert_pem` is a certificate whose key's hash is `expected`."""
    try:
        got = ca_hash(cert_pem)
    except ValueError as e:
        raise UntrustedCA(f"the control plane's CA certificate does not parse: {e}") from e
    if got != normalized_hash(expected):
        raise UntrustedCA(
            f"the control plane's CA has hash {got}, not the {normalized_hash(expected)} given: "
            "refusing to trust it (a mistyped hash, or not the control plane you meant)"
        )


def with_ca_hash(join_token: str, hash_: str) -> str:
    """A join token that carries its CA's hash, so joining stays one command."""
    return join_token + JOIN_HASH_SEPARATOR + normalized_hash(hash_).removeprefix(HASH_PREFIX)


def split_join_token(token: str) -> tuple[str, str | None]:
    """A join token's secret and the CA hash it carries (None: it carries none)."""
    secret, sep, tail = token.rpartition(JOIN_HASH_SEPARATOR)
    try:
        return (secret, normalized_hash(tail)) if sep else (token, None)
    except ValueError:
        return token, None  # not a hash: the whole is the secret (and a wrong one, likely)


CA_PATH = "/api/v1/ca"


def fetch_ca(server_url: str, expected: str, timeout_s: float = 10.0) -> bytes:
    """The CA certificate (PEM) the control plane at `server_url` serves, checked against the
    hash `expected` (UntrustedCA otherwise). OSError when it cannot be fetched."""
    parts = urlsplit(server_url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"a CA is fetched over https only, not from {server_url}")
    connection = http.client.HTTPSConnection(
        parts.hostname, parts.port or 443, timeout=timeout_s, context=unverified_context()
    )
    try:
        connection.request("GET", CA_PATH)
        answer = connection.getresponse()
        body = answer.read()
    except http.client.HTTPException as e:
        raise OSError(f"GET {CA_PATH}: {e}") from e
    finally:
        connection.close()
    if answer.status != 200:
        raise OSError(f"GET {server_url}{CA_PATH} answered {answer.status}")
    check_ca(body, expected)
    return body


def pin_ca(path: Path, server_url: str, expected: str | None) -> bytes | None:
    """The CA to trust for `server_url`, pinned at `path`: with a hash `expected`, the one
    pinned already if it has that hash, else fetched, checked and pinned; without, the one
    pinned (None if none is)."""
    try:
        pinned: bytes | None = path.read_bytes()
    except FileNotFoundError:
        pinned = None
    if expected is None:
        return pinned
    if pinned is not None and ca_hash(pinned) == normalized_hash(expected):
        return pinned
    fetched = fetch_ca(server_url, expected)
    write_private(path, fetched.decode())
    return fetched


def server_hosts(host: str, extra: list[str]) -> list[str]:
    """The names a server listening on `host` is reached by: `host` itself (or, on every
    address, this machine's names and addresses), loopback, and the `extra` names given."""
    hosts: list[str] = [*LOOPBACK_NAMES]
    if host in ("0.0.0.0", "::", ""):
        hosts += _local_names()
    else:
        hosts.append(host)
    return list(dict.fromkeys([*hosts, *extra]))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """The SSL context of a listener serving `cert_file`: TLS 1.2 at least."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MIN_VERSION
    context.load_cert_chain(cert_file, key_file)
    return context


def client_context(ca_pem: bytes) -> ssl.SSLContext:
    """The SSL context of a client that trusts only the CA `ca_pem` and checks host names:
    TLS 1.2 at least."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, and checks host names
    context.minimum_version = MIN_VERSION
    context.load_verify_locations(cadata=ca_pem.decode())
    return context


def unverified_context() -> ssl.SSLContext:
    """For the one call that fetches a CA certificate before it is trusted: what comes back is
    checked against its hash (`check_ca`), so the channel need not be."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = MIN_VERSION
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _spki(der: bytes) -> bytes:
    """The SubjectPublicKeyInfo of a DER certificate, whole (tag and length included):
    Certificate = SEQUENCE { tbsCertificate = SEQUENCE { [0] version (optional), serial,
    signature, issuer, validity, subject, subjectPublicKeyInfo, ... }, ... }."""
    _, tbs_start, _ = _tlv(der, 0)  # into Certificate
    _, at, _ = _tlv(der, tbs_start)  # into tbsCertificate
    if der[at] == 0xA0:  # the explicit version
        at = _tlv(der, at)[2]
    for _ in range(5):  # serial, signature, issuer, validity, subject
        at = _tlv(der, at)[2]
    tag, _, end = _tlv(der, at)
    if tag != 0x30:
        raise IndexError("no SubjectPublicKeyInfo where a certificate holds it")
    return der[at:end]


def _tlv(der: bytes, at: int) -> tuple[int, int, int]:
    """A DER element at `at`: its tag, where its content starts, where it ends."""
    tag, length, at = der[at], der[at + 1], at + 2
    if length & 0x80:
        count = length & 0x7F
        length, at = int.from_bytes(der[at : at + count], "big"), at + count
    if at + length > len(der):
        raise IndexError("a DER element runs past the end")
    return tag, at, at + length


def _local_names() -> list[str]:
    """This machine's host names and the addresses of its interfaces."""
    import psutil

    names = [socket.gethostname(), socket.getfqdn()]
    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                names.append(a.address.split("%")[0])  # no IPv6 zone
    return [n for n in names if n]
