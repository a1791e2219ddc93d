"""Node liveness, kept in memory: a heartbeat touches a dict, never the database.

The database hears about a node only when its status changes (ready <-> lost). After a restart
every node gets a fresh TTL, so none is declared lost for the server's own absence.
"""

import time
from collections.abc import Callable, Iterable


class Liveness:
    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._last_beat: dict[str, float] = {}

    def beat(self, node_id: str) -> None:
        self._last_beat[node_id] = self._clock()

    def expired(self, node_ids: Iterable[str]) -> list[str]:
        """The nodes among `node_ids` whose last beat is older than the TTL.

        A node never seen by this process starts its TTL now.
        """
        now = self._clock()
        out = []
        for node_id in node_ids:
            last = self._last_beat.setdefault(node_id, now)
            if now - last > self.ttl_s:
                out.append(node_id)
        return out
