"""API keys, checked against the key hashes in the gateway's view.

The view follows the control plane by a long poll, a few milliseconds behind it. A key created
that moment (a customer's script that creates a key and uses it at once) would be refused in
between, so a key the view lacks gets one more look when the next view arrives, within
`KEY_MISS_WAIT_S`: the control plane answers the poll at once when a key is added. A key still
unknown then is refused; a wrong key costs its sender that second, and the gateway nothing.
"""

from hashgrid.common.secrets import hash_secret
from hashgrid.contracts.gateway import KeyEntry
from hashgrid.gateway.errors import InvalidKey
from hashgrid.gateway.view import View, ViewWatcher

KEY_MISS_WAIT_S = 1.0


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


async def authenticate_current(
    authorization: str | None, watcher: ViewWatcher, wait_s: float = KEY_MISS_WAIT_S
) -> KeyEntry:
    """`authenticate` against the watcher's view, looking again once the next view arrives
    (within `wait_s`) when the view lacks the key (module docstring)."""
    try:
        return authenticate(authorization, watcher.view)
    except InvalidKey:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise  # no key to wait for
    await watcher.next_view(wait_s)
    return authenticate(authorization, watcher.view)
