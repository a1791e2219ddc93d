"""The gateway's local usage spool: append-only segments, read oldest first, acknowledged."""

import os
import signal
import sqlite3
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from hashgrid.contracts.gateway import KeyEntry, RouteReplica, UsageRecord
from hashgrid.gateway.metering import (
    SEGMENT_SUFFIX,
    Batch,
    SpoolBusy,
    UsageSpool,
    adopt_sqlite_spool,
)
from hashgrid.gateway.proxy import Exchange, usage_record


def record(request_id: str, prompt_tokens: int = 5) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "client_request_id": None,
        "key_id": "k1",
        "customer_id": "c1",
        "model": "tiny",
        "endpoint": "/v1/chat/completions",
        "replica_id": "r1",
        "node_id": "n1",
        "site": "s1",
        "status_code": 200,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 7,
        "cached_tokens": 0,
        "ttft_ms": 12.5,
        "duration_ms": 40.0,
        "started_at": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        "usage_clamped": False,
    }


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[UsageSpool]:
    s = UsageSpool(tmp_path / "spool")
    yield s
    s.close()


def segments(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(SEGMENT_SUFFIX))


def drain(spool: UsageSpool, limit: int = 1000) -> list[str]:
    """Read and acknowledge everything, as the shipper does; return the request ids."""
    shipped: list[str] = []
    while True:
        batch = spool.read(limit)
        if batch.start == batch.end:
            return shipped
        spool.ack(batch)
        shipped += batch.request_ids


def test_the_hot_path_record_has_exactly_the_contract_fields_and_validates() -> None:
    """proxy.usage_record builds the dict UsageRecord would: same names, valid values."""
    x = Exchange(request_id="q1", endpoint="/v1/completions", model="tiny", status=200)
    x.replica = RouteReplica(
        replica_id="r1", endpoint="http://e", node_id="n1", site="s1", region="us"
    )
    x.prompt_tokens, x.completion_tokens, x.ttft_ms = 3, 4, 1.5
    key = KeyEntry(key_id="k1", key_hash="h", customer_id="c1")
    plain = usage_record(x, key, 9.0)
    assert set(plain) == set(UsageRecord.model_fields)
    spooled = UsageRecord.model_validate_json(orjson.dumps(plain, option=orjson.OPT_UTC_Z))
    assert spooled.model_dump() == plain
    x.replica = None
    assert UsageRecord.model_validate(usage_record(x, key, 9.0)).replica_id is None


def test_empty_spool_has_nothing_pending(spool: UsageSpool) -> None:
    assert spool.pending() == 0
    batch = spool.read(10)
    assert batch.records == []
    assert batch.start == batch.end


def test_creates_missing_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "spool"
    s = UsageSpool(path)
    s.append(record("q1"))
    s.close()
    assert segments(path)


def test_stored_bytes_are_the_record_as_json(spool: UsageSpool) -> None:
    spool.append(record("q1"))
    batch = spool.read(1)
    assert batch.request_ids == ["q1"]
    assert UsageRecord.model_validate_json(batch.records[0]).model_dump() == record("q1")


def test_an_append_is_readable_at_once_by_another_opener(tmp_path: Path) -> None:
    """Each append is one write(2), in the page cache when it returns: a SIGKILL after it loses
    nothing (here: the spool is never closed before the files are read back)."""
    s = UsageSpool(tmp_path / "spool")
    s.append(record("q1"))
    lines = segments(tmp_path / "spool")[-1].read_bytes().splitlines()
    assert [orjson.loads(line)["request_id"] for line in lines] == ["q1"]
    s.close()


def test_records_survive_closing_and_reopening_and_each_open_starts_a_segment(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spool"
    first = UsageSpool(path)
    for rid in ("q1", "q2", "q3"):
        first.append(record(rid))
    first.close()
    second = UsageSpool(path)
    try:
        assert second.pending() == 3
        second.append(record("q4"))
        assert len(segments(path)) == 2
        assert second.read(10).request_ids == ["q1", "q2", "q3", "q4"]
    finally:
        second.close()


def test_a_second_process_cannot_open_the_same_spool(spool: UsageSpool, tmp_path: Path) -> None:
    pid = os.fork()
    if pid == 0:  # flock belongs to the open file: a child's own open must fail
        try:
            UsageSpool(tmp_path / "spool")
        except SpoolBusy:
            os._exit(0)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_read_is_oldest_first_at_most_n_and_does_not_remove(spool: UsageSpool) -> None:
    for rid in ("zeta", "alpha", "mid", "beta"):  # insertion order, not alphabetical
        spool.append(record(rid))
    assert spool.read(2).request_ids == ["zeta", "alpha"]
    assert spool.read(10).request_ids == ["zeta", "alpha", "mid", "beta"]
    assert spool.pending() == 4


def test_ack_moves_past_the_batch_and_counts_it(spool: UsageSpool) -> None:
    for rid in ("q1", "q2", "q3"):
        spool.append(record(rid))
    spool.ack(spool.read(2))
    assert spool.pending() == 1
    assert spool.read(10).request_ids == ["q3"]


def test_a_stale_ack_is_ignored(spool: UsageSpool) -> None:
    """Two readers of the same position (a cancelled shipment, then the last one at shutdown):
    only the first ack counts."""
    for rid in ("q1", "q2"):
        spool.append(record(rid))
    a, b = spool.read(1), spool.read(1)
    spool.ack(a)
    spool.ack(b)
    assert spool.pending() == 1
    assert spool.read(10).request_ids == ["q2"]


def test_restart_resumes_after_the_acknowledged_offset(tmp_path: Path) -> None:
    path = tmp_path / "spool"
    first = UsageSpool(path)
    for n in range(10):
        first.append(record(f"q{n}"))
    first.ack(first.read(4))
    first.close()  # or killed: nothing is flushed at close
    second = UsageSpool(path)
    try:
        assert second.pending() == 6
        assert drain(second) == [f"q{n}" for n in range(4, 10)]
        assert second.pending() == 0
    finally:
        second.close()


def test_a_torn_last_line_is_skipped_and_the_next_appends_are_whole(tmp_path: Path) -> None:
    path = tmp_path / "spool"
    first = UsageSpool(path)
    first.append(record("q1"))
    first.close()
    [segment] = segments(path)
    with segment.open("ab") as f:  # a crash in the middle of a write
        f.write(orjson.dumps(record("torn"))[:40])
    second = UsageSpool(path)
    try:
        assert second.pending() == 1
        second.append(record("q2"))
        assert drain(second) == ["q1", "q2"]
        assert second.pending() == 0
    finally:
        second.close()


def test_a_line_being_written_is_left_for_the_next_read(spool: UsageSpool, tmp_path: Path) -> None:
    """In the segment still being appended to, an incomplete tail is not torn: not yet whole."""
    spool.append(record("q1"))
    [segment] = segments(tmp_path / "spool")
    line = orjson.dumps(record("q2"), option=orjson.OPT_UTC_Z) + b"\n"
    with segment.open("ab") as f:
        f.write(line[:30])
    spool.ack(spool.read(10))
    with segment.open("ab") as f:
        f.write(line[30:])
    assert spool.read(10).request_ids == ["q2"]


def test_fully_acknowledged_segments_are_deleted(tmp_path: Path) -> None:
    path = tmp_path / "spool"
    s = UsageSpool(path, segment_bytes=1000)
    try:
        for n in range(30):
            s.append(record(f"q{n}"))
        assert len(segments(path)) > 5
        before = segments(path)
        s.ack(s.read(12))
        assert segments(path)[0] != before[0], "the first segments were acknowledged whole"
        drain(s)
        assert segments(path) == before[-1:], "only the segment being written stays"
    finally:
        s.close()


def test_many_records_across_rotations_and_restarts_arrive_once_each_in_order(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spool"
    shipped: list[str] = []
    n = 0
    for _ in range(3):
        s = UsageSpool(path, segment_bytes=4096)
        for _ in range(500):
            s.append(record(f"q{n}"))
            n += 1
            if n % 97 == 0:
                batch = s.read(50)
                s.ack(batch)
                shipped += batch.request_ids
        s.close()
    s = UsageSpool(path, segment_bytes=4096)
    try:
        shipped += drain(s, limit=64)
        assert shipped == [f"q{i}" for i in range(1500)]
        assert s.pending() == 0
    finally:
        s.close()


def test_a_crash_between_the_ack_and_the_deletes_is_tidied_on_open(tmp_path: Path) -> None:
    path = tmp_path / "spool"
    s = UsageSpool(path, segment_bytes=500)
    for n in range(10):
        s.append(record(f"q{n}"))
    before = segments(path)
    batch = s.read(1000)
    s.close()
    # The acked file as ack writes it, the segments it finished still there.
    (path / "acked").write_bytes(b"%d %d\n" % (batch.end.segment, batch.end.offset))
    s = UsageSpool(path)
    try:
        assert s.pending() == 0
        assert all(not p.exists() for p in before[:-1])
        assert drain(s) == []
    finally:
        s.close()


def test_sync_flushes_without_changing_what_is_pending(spool: UsageSpool) -> None:
    spool.append(record("q1"))
    spool.sync()
    assert spool.pending() == 1
    assert isinstance(spool.read(1), Batch)


def test_records_left_in_an_older_sqlite_spool_are_adopted_and_it_is_deleted(
    spool: UsageSpool, tmp_path: Path
) -> None:
    db = tmp_path / "usage-spool.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE spool (request_id TEXT PRIMARY KEY, record BLOB NOT NULL)")
    for rid in ("old1", "old2"):
        raw = orjson.dumps(record(rid), option=orjson.OPT_UTC_Z)
        conn.execute("INSERT INTO spool VALUES (?, ?)", (rid, raw))
    conn.close()
    assert adopt_sqlite_spool(db, spool) == 2
    assert not db.exists()
    assert spool.read(10).request_ids == ["old1", "old2"]
    assert adopt_sqlite_spool(db, spool) == 0


def test_the_spool_is_private_also_when_an_older_gateway_left_it_readable(
    tmp_path: Path,
) -> None:
    """Usage names customers and their traffic: 0600 files in a 0700 directory."""
    path = tmp_path / "spool"
    path.mkdir(mode=0o755)
    (path / f"{0:012d}{SEGMENT_SUFFIX}").write_bytes(b"")
    (path / f"{0:012d}{SEGMENT_SUFFIX}").chmod(0o644)
    s = UsageSpool(path)
    try:
        s.append(record("q1"))
        s.ack(s.read(10))
        s.track("s1", lambda: record("s1"))
        s.write_journal(s.progress())
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.iterdir()}
        assert {"lock", "acked", "streams"} <= set(modes)
        assert set(modes.values()) == {0o600}, modes
    finally:
        s.close()


def test_an_open_streams_progress_is_spooled_by_the_next_open_once(tmp_path: Path) -> None:
    path = tmp_path / "spool"

    def stream(s: UsageSpool) -> None:
        so_far = {"completion_tokens": 3}
        s.track("s1", lambda: record("s1") | so_far)
        s.write_journal(s.progress())
        so_far["completion_tokens"] = 9  # after the last tick: not journaled

    killed_after(stream, path)
    again = UsageSpool(path)
    try:
        batch = again.read(10)
        assert batch.request_ids == ["s1"]
        assert orjson.loads(batch.records[0])["completion_tokens"] == 3
        assert not (path / "streams").exists()
    finally:
        again.close()
    assert drain(UsageSpool(path)) == ["s1"], "spooled once, not at each open"


def test_a_streams_final_record_ends_its_journaling(spool: UsageSpool, tmp_path: Path) -> None:
    spool.track("s1", lambda: record("s1"))
    spool.write_journal(spool.progress())
    assert (tmp_path / "spool" / "streams").exists()
    spool.append(record("s1"))
    assert spool.progress() == []
    spool.write_journal(spool.progress())
    assert not (tmp_path / "spool" / "streams").exists()


def test_a_final_record_spooled_after_the_last_tick_comes_before_the_journaled_one(
    tmp_path: Path,
) -> None:
    """The server keeps the first record of a request id: the final one wins."""
    path = tmp_path / "spool"

    def stream(s: UsageSpool) -> None:
        s.track("s1", lambda: record("s1", prompt_tokens=0))
        s.write_journal(s.progress())
        s.append(record("s1", prompt_tokens=5))  # it ended; the crash came before a tick

    killed_after(stream, path)
    again = UsageSpool(path)
    try:
        batch = again.read(10)
        assert batch.request_ids == ["s1", "s1"]
        assert orjson.loads(batch.records[0])["prompt_tokens"] == 5
    finally:
        again.close()


def test_streams_open_at_a_clean_close_are_spooled_by_the_next_open(tmp_path: Path) -> None:
    path = tmp_path / "spool"
    s = UsageSpool(path)
    s.track("s1", lambda: record("s1"))
    s.close()
    again = UsageSpool(path)
    try:
        assert again.read(10).request_ids == ["s1"]
    finally:
        again.close()


def killed_after(work: Callable[[UsageSpool], None], path: Path) -> None:
    """Run `work` on the spool at `path` in a child process, then SIGKILL it (no close)."""
    pid = os.fork()
    if pid == 0:
        try:
            work(UsageSpool(path))
            os.kill(os.getpid(), signal.SIGKILL)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status)
    assert os.WTERMSIG(status) == signal.SIGKILL


def test_a_batch_holds_no_more_bytes_than_its_bound_and_the_next_read_goes_on(
    tmp_path: Path,
) -> None:
    """A batch size that would make a body the control plane refuses (413 on every resend)
    is cut by bytes: the rest comes in the next batch, nothing skipped."""
    spool = UsageSpool(tmp_path / "spool")
    for i in range(10):
        spool.append({"request_id": f"r{i}", "model": "m" * 100})
    first = spool.read(100, max_bytes=400)
    assert 1 <= len(first.records) < 10
    assert sum(len(r) + 1 for r in first.records) <= 400
    spool.ack(first)
    rest = spool.read(100, max_bytes=1 << 20)
    assert first.request_ids + rest.request_ids == [f"r{i}" for i in range(10)]
    spool.ack(rest)
    assert spool.read(100).records == []
    one = UsageSpool(tmp_path / "other")
    one.append({"request_id": "big", "model": "m" * 1000})
    assert one.read(100, max_bytes=10).request_ids == ["big"]  # a record larger than the bound
    spool.close()
    one.close()


def test_cached_prompt_tokens_are_taken_from_usage_details_within_the_prompt() -> None:
    """OpenAI's `prompt_tokens_details.cached_tokens` is kept (within the prompt's count);
    absent or implausible, none are cached."""
    x = Exchange(request_id="q1", endpoint="/v1/chat/completions", model="tiny", status=200)
    x.take_usage(
        {"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 6}}
    )
    assert (x.prompt_tokens, x.cached_tokens) == (10, 6)
    x.take_usage(
        {"prompt_tokens": 4, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 9}}
    )
    assert x.cached_tokens == 4
    y = Exchange(request_id="q2", endpoint="/v1/chat/completions", model="tiny", status=200)
    y.take_usage({"prompt_tokens": 4, "prompt_tokens_details": {"cached_tokens": -3}})
    assert y.cached_tokens == 0
