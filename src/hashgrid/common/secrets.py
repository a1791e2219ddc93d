"""Bearer secrets: made with enough entropy that a plain SHA-256 is a safe way to store them."""

import hashlib
import hmac
import secrets


def new_secret(prefix: str) -> str:
    """A fresh secret such as `hg_admin_3q...`; the prefix tells a reader what it unlocks."""
    return f"{prefix}{secrets.token_urlsafe(32)}"


def hash_secret(secret: str) -> str:
    """The digest stored at rest; the secret itself is shown once and never stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_secret(a: str, b: str) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(a.encode(), b.encode())
