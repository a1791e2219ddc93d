"""The control plane's CA (common/ca.py) and trusting it by hash (common/tls.py)."""

import ssl
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hashgrid.common.ca import load_or_create_ca, new_key_and_request, write_issued
from hashgrid.common.net import free_port
from hashgrid.common.tls import (
    UntrustedCA,
    ca_hash,
    check_ca,
    client_context,
    is_loopback,
    normalized_hash,
    server_context,
    server_hosts,
    split_join_token,
    with_ca_hash,
)


def test_ca_is_made_once_with_its_key_readable_by_its_owner_only(tmp_path: Path) -> None:
    ca = load_or_create_ca(tmp_path / "tls")
    key = tmp_path / "tls" / "ca-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again = load_or_create_ca(tmp_path / "tls")
    assert again.cert_pem == ca.cert_pem
    assert again.hash == ca.hash
    constraints = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca


def test_ca_hash_is_the_sha256_of_the_public_key_read_without_cryptography(
    tmp_path: Path,
) -> None:
    """The DER walk in common/tls.py agrees with cryptography's own SubjectPublicKeyInfo."""
    import hashlib

    ca = load_or_create_ca(tmp_path)
    spki = ca.cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert ca_hash(ca.cert_pem) == "sha256:" + hashlib.sha256(spki).hexdigest()
    leaf = ca.issue("x", ["example.test"])
    assert ca_hash(leaf.cert_pem) != ca.hash  # the leaf's own key


def test_check_ca_refuses_a_ca_whose_hash_differs(tmp_path: Path) -> None:
    ours, theirs = load_or_create_ca(tmp_path / "a"), load_or_create_ca(tmp_path / "b")
    check_ca(ours.cert_pem, ours.hash)
    check_ca(ours.cert_pem, ours.hash.removeprefix("sha256:").upper())
    with pytest.raises(UntrustedCA, match="refusing to trust it"):
        check_ca(theirs.cert_pem, ours.hash)
    with pytest.raises(UntrustedCA, match="does not parse"):
        check_ca(b"not a certificate", ours.hash)


def test_join_token_carries_the_ca_hash_and_gives_back_its_secret(tmp_path: Path) -> None:
    ca = load_or_create_ca(tmp_path)
    token = with_ca_hash("hg_join_abc-DEF_123", ca.hash)
    assert split_join_token(token) == ("hg_join_abc-DEF_123", ca.hash)
    assert split_join_token("hg_join_abc-DEF_123") == ("hg_join_abc-DEF_123", None)
    assert split_join_token("hg_join_abc.notahash") == ("hg_join_abc.notahash", None)
    with pytest.raises(ValueError, match="not a CA hash"):
        normalized_hash("sha256:1234")


def test_signed_request_keeps_its_key_and_names(tmp_path: Path) -> None:
    ca = load_or_create_ca(tmp_path)
    key_pem, csr = new_key_and_request("gateway eu-1", ["gw.example.test", "10.0.0.7"])
    cert = x509.load_pem_x509_certificate(ca.sign_request(csr))
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert cert.public_key() == key.public_key()
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["gw.example.test"]
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.7"]
    assert cert.issuer == ca.cert.subject


def test_request_naming_no_host_is_refused(tmp_path: Path) -> None:
    ca = load_or_create_ca(tmp_path)
    _, csr = new_key_and_request("nameless", [])
    with pytest.raises(ValueError, match="names no host"):
        ca.sign_request(csr)


def test_server_hosts_hold_loopback_the_host_and_extras() -> None:
    hosts = server_hosts("10.1.2.3", ["cp.example.test"])
    assert {"localhost", "127.0.0.1", "::1", "10.1.2.3", "cp.example.test"} <= set(hosts)
    assert "127.0.0.1" in server_hosts("0.0.0.0", [])
    assert is_loopback("127.0.0.1")
    assert is_loopback("localhost")
    assert is_loopback("::1")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("10.0.0.1")


@pytest.fixture
def tls_echo(tmp_path: Path) -> Iterator[tuple[int, bytes]]:
    """A TLS listener on loopback with a certificate from a fresh CA; its port and CA."""
    import socket

    ca = load_or_create_ca(tmp_path / "ca")
    write_issued(ca.issue("s", ["127.0.0.1"]), tmp_path / "s.pem", tmp_path / "s-key.pem")
    context = server_context(tmp_path / "s.pem", tmp_path / "s-key.pem")
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"hello")
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield port, ca.cert_pem
    listener.close()


def _hello(port: int, context: ssl.SSLContext, host: str = "127.0.0.1") -> bytes:
    import socket

    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        return tls.recv(5)


def test_client_trusting_the_ca_connects(tls_echo: tuple[int, bytes]) -> None:
    port, ca_pem = tls_echo
    assert _hello(port, client_context(ca_pem)) == b"hello"


def test_client_trusting_another_ca_is_refused(tls_echo: tuple[int, bytes], tmp_path: Path) -> None:
    port, _ = tls_echo
    other = load_or_create_ca(tmp_path / "other")
    with pytest.raises(ssl.SSLCertVerificationError):
        _hello(port, client_context(other.cert_pem))


def test_client_asking_for_a_name_the_certificate_lacks_is_refused(
    tls_echo: tuple[int, bytes],
) -> None:
    port, ca_pem = tls_echo
    with pytest.raises(ssl.SSLCertVerificationError):
        _hello(port, client_context(ca_pem), host="elsewhere.example.test")


def test_contexts_take_tls_1_2_at_least(tmp_path: Path) -> None:
    ca = load_or_create_ca(tmp_path)
    write_issued(ca.issue("s", ["127.0.0.1"]), tmp_path / "s.pem", tmp_path / "s-key.pem")
    assert server_context(tmp_path / "s.pem", tmp_path / "s-key.pem").minimum_version == (
        ssl.TLSVersion.TLSv1_2
    )
    client = client_context(ca.cert_pem)
    assert client.minimum_version == ssl.TLSVersion.TLSv1_2
    assert client.verify_mode == ssl.CERT_REQUIRED
    assert client.check_hostname
