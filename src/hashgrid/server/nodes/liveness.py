"""Node liveness, kept in memory: a heartbeat touches a dict, never the database.

The database hears about a node only when its status changes (ready <-> lost). After a restart
every node gets a fresh TTL, so none is declared lost for the server's own absence: the ack of
each beat tells agents the TTL, and they retry beats at most a quarter of it apart while the
server is away (agent/heartbeat.py), so every node that is up beats within that grace. Likewise a
node is lost only when the server heard some request after the node's deadline passed: proof
that the server was reachable when the node should have beaten. A server shutting down or cut
off from the network hears nothing, and so declares no one lost.
"""

import time
from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Receive, Scope, Send


class Liveness:
    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._last_beat: dict[str, float] = {}
        self._last_heard = clock()

    def beat(self, node_id: str) -> None:
        self._last_beat[node_id] = self._last_heard = self._clock()

    def heard(self) -> None:
        """Any request reached the server: it is not the one cut off."""
        self._last_heard = self._clock()

    def expired(self, node_ids: Iterable[str]) -> list[str]:
        """The nodes among `node_ids` silent for longer than the TTL while the server heard others.

        A node never seen by this process starts its TTL now.
        """
        now = self._clock()
        out = []
        for node_id in node_ids:
            last = self._last_beat.setdefault(node_id, now)
            if min(now, self._last_heard) - last > self.ttl_s:
                out.append(node_id)
        return out


class HearingMiddleware:
    """Tells `Liveness` of every request, before anything else handles it."""

    def __init__(self, app: ASGIApp, liveness: Liveness) -> None:
        self._app = app
        self._liveness = liveness

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self._liveness.heard()
        await self._app(scope, receive, send)
