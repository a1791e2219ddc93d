"""Which heartbeats carry the model store's holdings: changes, and every fingerprint beat."""

from datetime import UTC, datetime
from pathlib import Path

from hashgrid.agent.holdings import HoldingsReport, holdings_of
from hashgrid.agent.store import ModelStore
from hashgrid.contracts.agent import Holding


def _holding(source: str, used: int) -> Holding:
    return Holding(
        source=source,
        size_bytes=1000,
        sha256="ab" * 32,
        last_used=datetime.fromtimestamp(1_700_000_000 + used, UTC),
    )


class Store:
    def __init__(self) -> None:
        self.held: list[Holding] = []

    def read(self) -> list[Holding]:
        return list(self.held)


def test_steady_beats_carry_nothing_once_the_server_took_the_holdings() -> None:
    store = Store()
    report = HoldingsReport(store.read)
    first = report.for_beat(with_fingerprint=True)
    assert first == []  # an empty store is said once, so the server knows it holds nothing
    report.acknowledged(first)
    for _ in range(5):
        assert report.for_beat(with_fingerprint=False) is None
        report.acknowledged(None)


def test_a_change_is_sent_on_the_next_beat_and_then_not_again() -> None:
    store = Store()
    report = HoldingsReport(store.read)
    report.acknowledged(report.for_beat(with_fingerprint=True))
    store.held = [_holding("http://models/a.gguf", 1)]
    sent = report.for_beat(with_fingerprint=False)
    assert sent == store.held
    report.acknowledged(sent)
    assert report.for_beat(with_fingerprint=False) is None

    store.held = [_holding("http://models/a.gguf", 2)]  # used again: last_used moved
    assert report.for_beat(with_fingerprint=False) == store.held


def test_a_change_the_server_did_not_acknowledge_is_sent_again() -> None:
    store = Store()
    report = HoldingsReport(store.read)
    report.acknowledged(report.for_beat(with_fingerprint=True))
    store.held = [_holding("hf://o/r/m.gguf", 1)]
    assert report.for_beat(with_fingerprint=False) == store.held  # this beat fails: no ack
    assert report.for_beat(with_fingerprint=False) == store.held


def test_every_fingerprint_beat_carries_them_so_a_restarted_server_relearns_them() -> None:
    store = Store()
    store.held = [_holding("http://models/a.gguf", 1), _holding("http://models/b.gguf", 0)]
    report = HoldingsReport(store.read)
    report.acknowledged(report.for_beat(with_fingerprint=True))
    assert report.for_beat(with_fingerprint=False) is None
    assert report.for_beat(with_fingerprint=True) == store.held


async def test_a_model_served_from_a_local_path_is_not_a_holding(tmp_path: Path) -> None:
    """Only what the store downloaded is held (and may be evicted); a local file is the node's."""
    local = tmp_path / "m.gguf"
    local.write_bytes(b"weights")
    store = ModelStore(tmp_path / "store", 2**30)
    assert await store.fetch(str(local)) == local
    assert holdings_of(store) == []
