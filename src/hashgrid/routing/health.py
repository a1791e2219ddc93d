"""Passive health: a replica that fails a request is ejected for a cool-down, then probed.

A failure is what the caller saw before the first byte: a refused or timed-out connection, or
an answer that says "not now" (502, 503, 504). The first failure ejects the replica for
`base_s`; each further failure in a row doubles it, up to `max_s`. When the cool-down ends the
replica takes one request, the probe, and no other until the probe's outcome is known: success
restores it, failure ejects it again for twice as long. A probe with no outcome after `max_s`
(its caller vanished) lets another probe go. Active health is the control plane's: only replicas
its feed lists as ready are ever candidates.
"""

from collections.abc import Callable
from dataclasses import dataclass

# An ejection whose cool-down ended this long ago with no probe is forgotten (its replica most
# likely left the view; if not, it is simply healthy again).
FORGET_S = 600.0


@dataclass
class _Ejection:
    failures: int
    until: float
    probing_since: float | None = None


class PassiveHealth:
    """Ejections by replica id, on an injected clock (seconds, monotonic)."""

    def __init__(
        self, clock: Callable[[], float], base_s: float = 10.0, max_s: float = 120.0
    ) -> None:
        self._clock = clock
        self._base_s = base_s
        self._max_s = max_s
        self._ejections: dict[str, _Ejection] = {}

    def __bool__(self) -> bool:
        """True while some replica is ejected or awaiting its probe."""
        return bool(self._ejections)

    def available(self, replica_id: str, now: float) -> bool:
        """Healthy, or its cool-down is over and no probe is out."""
        e = self._ejections.get(replica_id)
        if e is None:
            return True
        if now < e.until:
            return False
        return e.probing_since is None or now - e.probing_since > self._max_s

    def begin(self, replica_id: str, now: float) -> bool:
        """A request goes to `replica_id`; True when it is the probe of an ejected replica."""
        e = self._ejections.get(replica_id)
        if e is None or now < e.until:
            return False
        e.probing_since = now
        return True

    def succeeded(self, replica_id: str) -> None:
        """The replica answered. Clears an ejection whose cool-down is over: a request sent
        before the failure that ejected it proves nothing about it now."""
        e = self._ejections.get(replica_id)
        if e is not None and self._clock() >= e.until:
            del self._ejections[replica_id]

    def failed(self, replica_id: str) -> float:
        """The replica failed a request: eject it. Returns the cool-down in seconds."""
        now = self._clock()
        self._forget_old(now)
        e = self._ejections.get(replica_id)
        if e is not None and now < e.until:
            # Requests in flight when it went down fail together: one outage, not a run of them.
            return e.until - now
        failures = 1 if e is None else e.failures + 1
        cool_down = min(self._base_s * 2.0 ** min(failures - 1, 32), self._max_s)
        self._ejections[replica_id] = _Ejection(failures, now + cool_down)
        return cool_down

    def ejected(self) -> dict[str, float]:
        """Every ejected replica with the seconds its cool-down has left (0: awaiting a probe)."""
        now = self._clock()
        return {rid: max(0.0, e.until - now) for rid, e in sorted(self._ejections.items())}

    def _forget_old(self, now: float) -> None:
        old = [rid for rid, e in self._ejections.items() if now - e.until > FORGET_S]
        for rid in old:
            del self._ejections[rid]
