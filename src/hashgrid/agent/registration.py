"""Joining a site once, and keeping the node credential so a restart needs no new token."""

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from hashgrid.agent.control_plane import ControlPlane
from hashgrid.agent.settings import AgentSettings
from hashgrid.common.paths import write_private
from hashgrid.common.tls import split_join_token
from hashgrid.contracts.agent import Fingerprint


class NoCredential(Exception):
    """Neither a stored credential for this server nor a join token."""


@dataclass(frozen=True)
class Identity:
    server_url: str
    node_id: str
    node_name: str
    site: str
    credential: str


def load(settings: AgentSettings) -> Identity | None:
    """The stored identity for `settings.server_url`, if any."""
    try:
        data = json.loads(settings.credential_path.read_text())
    except (OSError, ValueError):
        return None
    identity = Identity(**data)
    return identity if identity.server_url == settings.server_url else None


async def join(
    control_plane: ControlPlane, settings: AgentSettings, fingerprint: Fingerprint
) -> Identity:
    """Trade the join token for a credential and store it (readable by this user only)."""
    if not settings.join_token:
        raise NoCredential(
            f"no stored credential for {settings.server_url} in {settings.credential_path}; "
            "pass --join-token (make one with `hashgrid sites join-token SITE`)"
        )
    secret, _ = split_join_token(settings.join_token)  # the CA hash is for agent/trust.py
    joined = await control_plane.join(secret, settings.name, fingerprint)
    identity = Identity(
        server_url=settings.server_url,
        node_id=joined.node_id,
        node_name=joined.node_name,
        site=joined.site,
        credential=joined.credential,
    )
    write_private(settings.credential_path, json.dumps(asdict(identity)))
    return identity


async def rotate(
    control_plane: ControlPlane, settings: AgentSettings, identity: Identity
) -> Identity:
    """Trade the node credential for a new one, store it, then use it; the new identity.

    The server stops taking the old credential as it answers, so the new one is stored at once
    and durably (a temporary file renamed over the old one, then synced): a crash in between
    leaves either credential file whole, never a torn one. Losing the answer itself (a crash
    before the write) leaves the node with no working credential: it must join again.
    """
    rotated = await control_plane.rotate()
    new = replace(
        identity, credential=rotated.credential, node_name=rotated.node_name, site=rotated.site
    )
    _store(settings.credential_path, new)
    control_plane.use_credential(new.credential)
    return new


def _store(path: Path, identity: Identity) -> None:
    write_private(path, json.dumps(asdict(identity)))  # atomic: written aside, then renamed
    for synced in (path, path.parent):  # the file's bytes, then the rename
        fd = os.open(synced, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def move(credential_path: Path, server_url: str) -> bool:
    """Point a stored identity at `server_url`, for the same control plane at a new address.

    Only a caller that knows both addresses reach one control plane may do this (`hashgrid up`
    re-run on other ports); otherwise the credential would be sent to a stranger.
    Returns whether an identity was stored.
    """
    try:
        identity = Identity(**json.loads(credential_path.read_text()))
    except (OSError, ValueError):
        return False
    write_private(credential_path, json.dumps(asdict(replace(identity, server_url=server_url))))
    return True
