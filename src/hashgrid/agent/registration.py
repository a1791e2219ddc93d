"""Joining a site once, and keeping the node credential so a restart needs no new token."""

import json
from dataclasses import asdict, dataclass

from hashgrid.agent.control_plane import ControlPlane
from hashgrid.agent.settings import AgentSettings
from hashgrid.common.paths import write_private
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
    joined = await control_plane.join(settings.join_token, settings.name, fingerprint)
    identity = Identity(
        server_url=settings.server_url,
        node_id=joined.node_id,
        node_name=joined.node_name,
        site=joined.site,
        credential=joined.credential,
    )
    write_private(settings.credential_path, json.dumps(asdict(identity)))
    return identity


def forget(settings: AgentSettings) -> None:
    settings.credential_path.unlink(missing_ok=True)
