"""Sign-in attempts per account and per address, limited before any password is checked.

Each attempt takes one unit from two buckets (`ratelimit.LocalBuckets`, GCRA): the account's
(`per_account` attempts per window) and the client address's (`per_address`). A guesser is held
to a few tries per window per account however many addresses it has, and one address cannot
spray guesses over many accounts. While refused, the right password is refused too: the answer
must not tell a guesser when it got there. Per process: several servers each allow as much.
"""

import time

from hashgrid.ratelimit import Charge, Clock, LocalBuckets


def _monotonic_ms() -> float:
    return time.monotonic() * 1000


class SignInThrottle:
    def __init__(
        self, per_account: int, per_address: int, window_s: float, clock: Clock = _monotonic_ms
    ) -> None:
        self._buckets = LocalBuckets(clock, period_ms=window_s * 1000)
        self._per_account = per_account
        self._per_address = per_address

    def attempt(self, account: str, address: str) -> float:
        """Count one attempt; 0 if allowed, else the seconds until one would be."""
        verdict = self._buckets.take(
            [
                Charge(f"account:{account}", self._per_account, 1),
                Charge(f"address:{address}", self._per_address, 1),
            ],
            [],
        )
        return 0.0 if verdict.allowed else max(verdict.retry_after_ms / 1000, 1.0)
