"""The gateway's access log: JSON lines, buffered, flushed on time, on size and at the end."""

import asyncio
import io

import orjson

from hashgrid.gateway.access_log import FLUSH_AT_BYTES, AccessLog


def test_lines_are_json_and_wait_for_the_flush() -> None:
    out = io.BytesIO()
    access = AccessLog(out)
    access.request({"request_id": "req_1", "status": 200, "ttft_ms": 1.5})
    assert out.getvalue() == b"", "buffered, not written per request"
    access.flush()
    [line] = out.getvalue().splitlines()
    fields = orjson.loads(line)
    assert fields["event"] == "request"
    assert (fields["request_id"], fields["status"], fields["ttft_ms"]) == ("req_1", 200, 1.5)
    assert fields["level"] == "info"
    assert fields["timestamp"].endswith("+00:00")


def test_a_full_buffer_is_written_at_once() -> None:
    out = io.BytesIO()
    access = AccessLog(out)
    filler = "x" * 1000
    for i in range(FLUSH_AT_BYTES // 1000 + 1):  # over the threshold, with the extra fields
        access.request({"request_id": f"req_{i}", "model": filler})
    written = [orjson.loads(line)["request_id"] for line in out.getvalue().splitlines()]
    assert len(written) > 0, "written once the buffer passed its size"
    assert written == [f"req_{i}" for i in range(len(written))]


async def test_the_task_flushes_on_time_and_when_stopped() -> None:
    out = io.BytesIO()
    access = AccessLog(out, flush_s=0.01)
    task = asyncio.create_task(access.run())
    access.request({"request_id": "req_1"})
    for _ in range(100):
        if out.getvalue():
            break
        await asyncio.sleep(0.01)
    assert len(out.getvalue().splitlines()) == 1
    access.request({"request_id": "req_2"})
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(out.getvalue().splitlines()) == 2, "the last lines are flushed at the end"
