"""API keys, checked against the key hashes in the gateway's view."""

from hashgrid.common.secrets import hash_secret
from hashgrid.contracts.gateway import KeyEntry
from hashgrid.gateway.errors import InvalidKey
from hashgrid.gateway.view import View


def authenticate(authorization: str | None, view: View) -> KeyEntry:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise InvalidKey(
            "You didn't provide an API key. Send it in the Authorization header as "
            "'Bearer YOUR_KEY'."
        )
    key = authorization[7:].strip()
    entry = view.keys.get(hash_secret(key))
    if entry is None:
        shown = f"{key[:8]}...{key[-4:]}" if len(key) > 12 else "(hidden)"
        raise InvalidKey(f"Incorrect API key provided: {shown}.")
    return entry
