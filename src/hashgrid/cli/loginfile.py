"""`<home>/config.json`: the user's saved login, which every command then acts as.

`hashgrid signup`, `login` and `invites accept` write it; `logout` removes it. It holds a
personal token, so it is written owner-only (0600, in a 0700 folder), as `up.json` is.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from hashgrid.common.paths import private_dir, write_private
from hashgrid.contracts.api.accounts import SignedIn

LOGIN_FILE = "config.json"


@dataclass
class SavedLogin:
    server_url: str
    token: str  # a personal token, hg_pat_...
    token_id: str  # to revoke it on `hashgrid logout`
    email: str
    organization: str

    @classmethod
    def of(cls, server_url: str, signed_in: SignedIn) -> "SavedLogin":
        return cls(
            server_url=server_url,
            token=signed_in.token,
            token_id=signed_in.token_id,
            email=signed_in.user.email,
            organization=signed_in.organization,
        )

    @classmethod
    def load(cls, home: Path) -> "SavedLogin | None":
        try:
            data = json.loads((home / LOGIN_FILE).read_text())
            return cls(**{k: str(data[k]) for k in cls.__dataclass_fields__})
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, home: Path) -> Path:
        path = private_dir(home) / LOGIN_FILE
        write_private(path, json.dumps(asdict(self), indent=2) + "\n")
        return path

    @staticmethod
    def remove(home: Path) -> bool:
        """Forget the saved login; False if there was none."""
        try:
            (home / LOGIN_FILE).unlink()
        except FileNotFoundError:
            return False
        return True


def same_server(a: str, b: str) -> bool:
    """Whether two control-plane URLs name the same server (scheme and host in any case, with
    or without a trailing slash)."""

    def key(url: str) -> tuple[str, str, str]:
        parts = urlsplit(url.strip())
        return parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/")

    return key(a) == key(b)
