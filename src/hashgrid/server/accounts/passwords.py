"""Password hashes: argon2id (RFC 9106's low-memory profile), computed off the event loop.

A hash costs tens of milliseconds of CPU on purpose; run in a worker thread, it does not stall
the requests the process serves meanwhile. An unknown account is checked against a dummy hash
so that it answers no faster than a known one with a wrong password.
"""

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY

_hasher = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)
_DUMMY = _hasher.hash("hashgrid: no such account")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` is the one `password_hash` was made from (None: no account)."""

    def check() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)
