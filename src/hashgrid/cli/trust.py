"""Which CA the CLI trusts for an https control plane.

In order: `--ca-file` (or HASHGRID_CA_FILE); the CA pinned at `<home>/ca.pem` (by
`hashgrid login --ca-hash`); the CA of a control plane run from this home
(`<home>/server/tls/ca.pem`: `hashgrid up`, or an admin on the server's machine); else the
system's trust store (a control plane behind a public certificate).
"""

import os
import ssl
from pathlib import Path

from hashgrid.common.paths import default_home
from hashgrid.common.tls import client_context, pin_ca

PINNED = "ca.pem"
LOCAL_SERVER_CA = Path("server") / "tls" / "ca.pem"


def ca_file(home: Path | None = None) -> Path | None:
    """The CA file to trust, if any (see the module's docstring)."""
    given = os.environ.get("HASHGRID_CA_FILE")
    if given:
        return Path(given).expanduser()
    home = home or default_home()
    for path in (home / PINNED, home / LOCAL_SERVER_CA):
        if path.is_file():
            return path
    return None


def verify_for(server_url: str, home: Path | None = None) -> ssl.SSLContext | bool:
    """What httpx verifies `server_url` by: the CA found, else the system's store."""
    if not server_url.startswith("https://"):
        return True
    found = ca_file(home)
    return client_context(found.read_bytes()) if found is not None else True


def pin(server_url: str, ca_hash: str, home: Path | None = None) -> Path:
    """Fetch the CA of `server_url`, check it against `ca_hash`, pin it at `<home>/ca.pem`."""
    path = (home or default_home()) / PINNED
    pin_ca(path, server_url, ca_hash)
    return path
