"""`<home>/up.json`: what `hashgrid up` tells scripts and the CLI about the stack it runs."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from hashgrid.common.paths import write_private

UP_FILE = "up.json"


@dataclass
class UpFile:
    gateway_url: str  # the OpenAI base URL, ending in /v1
    api_key: str
    server_url: str
    admin_token: str
    api_key_id: str = ""
    gateway_token: str = ""
    deployment: str = ""

    @classmethod
    def load(cls, home: Path) -> "UpFile | None":
        try:
            data = json.loads((home / UP_FILE).read_text())
        except (OSError, ValueError):
            return None
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def save(self, home: Path) -> None:
        write_private(home / UP_FILE, json.dumps(asdict(self), indent=2) + "\n")
