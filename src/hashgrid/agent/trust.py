"""Which control plane (and which gateways) this agent trusts: the CA pinned under its home.

As `kubeadm join` does: the join token carries the hash of the control plane's CA (or
`--ca-hash` gives it); the agent fetches the CA once, checks the hash, pins it at
`<home>/ca.pem`, and from then on verifies every TLS connection against it alone. A CA whose
hash differs is refused (`UntrustedCA`), and nothing is sent to that server.
"""

import ssl

from hashgrid.agent.settings import AgentSettings
from hashgrid.common.tls import client_context, pin_ca, split_join_token


class NoTrust(Exception):
    """An https control plane with no CA to check it against."""


def expected_hash(settings: AgentSettings) -> str | None:
    """The CA hash given: --ca-hash, else the one the join token carries."""
    if settings.ca_hash:
        return settings.ca_hash
    return split_join_token(settings.join_token)[1] if settings.join_token else None


def pinned_ca(settings: AgentSettings) -> bytes | None:
    """The CA (PEM) this agent trusts for its control plane; None over plain http.

    Raises UntrustedCA for a CA whose hash is not the one given, OSError when the CA cannot be
    fetched (the control plane away: worth retrying), NoTrust with nothing to check against.
    """
    if not settings.server_url.startswith("https://"):
        if expected_hash(settings) is not None:  # the token would cross the network in clear
            raise NoTrust(
                f"the join token (or --ca-hash) is for a control plane serving TLS, and "
                f"{settings.server_url} is plain http: use its https:// URL"
            )
        return None
    if settings.ca_file is not None:
        try:
            return settings.ca_file.read_bytes()
        except OSError as e:  # not worth retrying: a wrong path stays wrong
            raise NoTrust(f"cannot read the CA file {settings.ca_file}: {e}") from e
    ca = pin_ca(settings.ca_path, settings.server_url, expected_hash(settings))
    if ca is None:
        raise NoTrust(
            f"{settings.server_url} serves TLS, and no CA to trust it by is pinned in "
            f"{settings.ca_path}: join with a token from `hashgrid sites join-token SITE` "
            "(it carries the CA's hash), or pass --ca-hash sha256:... or --ca-file"
        )
    return ca


def control_plane_context(settings: AgentSettings) -> ssl.SSLContext | None:
    """The SSL context of every call to the control plane; None over plain http."""
    ca = pinned_ca(settings)
    return client_context(ca) if ca is not None else None


def gateway_client_context(settings: AgentSettings) -> ssl.SSLContext:
    """The SSL context of the agent's connections to gateways (its tunnels): gateways are
    trusted only with a certificate from the control plane's CA, pinned at join.

    Raises NoTrust when no CA is pinned (a control plane over plain http issues none).
    """
    ca = pinned_ca(settings)
    if ca is None:
        raise NoTrust(f"{settings.server_url} runs without TLS: no CA to verify gateways by")
    return client_context(ca)
