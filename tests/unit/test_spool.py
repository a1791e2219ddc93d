"""The gateway's local usage spool: durable, deduplicated, oldest first."""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from hashgrid.contracts.gateway import UsageRecord
from hashgrid.gateway.metering import UsageSpool


def record(request_id: str, prompt_tokens: int = 5) -> UsageRecord:
    return UsageRecord(
        request_id=request_id,
        key_id="k1",
        customer_id="c1",
        model="tiny",
        endpoint="/v1/chat/completions",
        replica_id="r1",
        node_id="n1",
        site="s1",
        status_code=200,
        prompt_tokens=prompt_tokens,
        completion_tokens=7,
        ttft_ms=12.5,
        duration_ms=40.0,
        started_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[UsageSpool]:
    s = UsageSpool(tmp_path / "usage.db")
    yield s
    s.close()


def ids(rows: list[tuple[str, bytes]]) -> list[str]:
    return [rid for rid, _ in rows]


def test_empty_spool_has_nothing_pending(spool: UsageSpool) -> None:
    assert spool.pending() == 0
    assert spool.oldest(10) == []


def test_creates_missing_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "usage.db"
    s = UsageSpool(path)
    s.append(record("q1"))
    s.close()
    assert path.exists()


def test_stored_bytes_are_the_record_as_json(spool: UsageSpool) -> None:
    original = record("q1")
    spool.append(original)
    [(rid, raw)] = spool.oldest(1)
    assert rid == "q1"
    assert UsageRecord.model_validate(orjson.loads(raw)) == original


def test_records_survive_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    first = UsageSpool(path)
    for rid in ("q1", "q2", "q3"):
        first.append(record(rid))
    first.close()

    second = UsageSpool(path)
    try:
        assert second.pending() == 3
        rows = second.oldest(10)
        assert ids(rows) == ["q1", "q2", "q3"]
        assert UsageRecord.model_validate_json(rows[1][1]) == record("q2")
    finally:
        second.close()


def test_each_append_is_visible_to_another_connection_at_once(tmp_path: Path) -> None:
    """Appends are committed immediately, so a crash before close loses nothing."""
    path = tmp_path / "usage.db"
    writer = UsageSpool(path)
    reader = None
    try:
        writer.append(record("q1"))
        reader = UsageSpool(path)
        assert ids(reader.oldest(5)) == ["q1"]
    finally:
        writer.close()
        if reader is not None:
            reader.close()


def test_second_append_with_same_request_id_is_ignored(spool: UsageSpool) -> None:
    spool.append(record("q1", prompt_tokens=5))
    spool.append(record("q1", prompt_tokens=999))
    assert spool.pending() == 1
    [(_, raw)] = spool.oldest(5)
    assert UsageRecord.model_validate_json(raw).prompt_tokens == 5


def test_duplicate_after_reopen_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    s = UsageSpool(path)
    s.append(record("q1"))
    s.close()
    s = UsageSpool(path)
    try:
        s.append(record("q1"))
        assert s.pending() == 1
    finally:
        s.close()


def test_oldest_returns_oldest_first_and_at_most_n(spool: UsageSpool) -> None:
    # Request ids deliberately not in alphabetical order: insertion order is what counts.
    for rid in ("zeta", "alpha", "mid", "beta"):
        spool.append(record(rid))
    assert ids(spool.oldest(2)) == ["zeta", "alpha"]
    assert ids(spool.oldest(10)) == ["zeta", "alpha", "mid", "beta"]
    assert spool.oldest(0) == []


def test_oldest_does_not_remove(spool: UsageSpool) -> None:
    spool.append(record("q1"))
    spool.oldest(1)
    assert spool.pending() == 1


def test_remove_deletes_only_the_given_ids(spool: UsageSpool) -> None:
    for rid in ("q1", "q2", "q3", "q4"):
        spool.append(record(rid))
    spool.remove(["q2", "q4", "unknown"])
    assert spool.pending() == 2
    assert ids(spool.oldest(10)) == ["q1", "q3"]


def test_remove_nothing_is_harmless(spool: UsageSpool) -> None:
    spool.append(record("q1"))
    spool.remove([])
    assert spool.pending() == 1


def test_removed_ids_may_be_spooled_again(spool: UsageSpool) -> None:
    spool.append(record("q1"))
    spool.remove(["q1"])
    spool.append(record("q1"))
    assert ids(spool.oldest(5)) == ["q1"]


def test_pending_counts(spool: UsageSpool) -> None:
    for n, rid in enumerate(("a", "b", "c"), start=1):
        spool.append(record(rid))
        assert spool.pending() == n
    spool.remove(["a"])
    assert spool.pending() == 2
