"""What the model store holds, as heartbeats report it, so the scheduler can prefer nodes that
already hold a model.

A beat carries the holdings only when they changed since the last beat the server
acknowledged, and with every fingerprint: a server that restarted (and forgot what it was told)
relearns them within `FINGERPRINT_EVERY` beats, while steady beats carry nothing.
"""

from collections.abc import Callable
from datetime import UTC, datetime

from hashgrid.agent.store import ModelStore
from hashgrid.contracts.agent import Holding


def holdings_of(store: ModelStore) -> list[Holding]:
    """The store's models, most recently used first (read from its in-memory index)."""
    return [
        Holding(
            source=m.source,
            size_bytes=m.size_bytes,
            sha256=m.sha256,
            last_used=datetime.fromtimestamp(m.last_used, UTC),
        )
        for m in store.holdings()
    ]


class HoldingsReport:
    """Decides which beats carry the holdings `read` returns."""

    def __init__(self, read: Callable[[], list[Holding]]) -> None:
        self._read = read
        self._acknowledged: list[Holding] | None = None  # as the server last took them

    def for_beat(self, with_fingerprint: bool) -> list[Holding] | None:
        """The holdings to send with the next beat; None when the server has them already."""
        now = self._read()
        return now if with_fingerprint or now != self._acknowledged else None

    def acknowledged(self, sent: list[Holding] | None) -> None:
        """The server accepted a beat that carried `sent` (None: carried none)."""
        if sent is not None:
            self._acknowledged = sent
