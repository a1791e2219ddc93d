"""The tunnel's frames (`contracts/tunnel.py`): what each side writes, the other reads back, and
anything else is refused as a bad frame rather than misread."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hashgrid.contracts.tunnel import (
    HEADER,
    BadFrame,
    Kind,
    frame,
    head_frame,
    open_frame,
    parse,
    parse_head,
    parse_open,
)


@given(
    stream=st.integers(0, 2**32 - 1),
    replica=st.text(max_size=40),
    path=st.text(max_size=40).map(lambda s: "/v1/" + s),
    body=st.binary(max_size=200),
)
def test_an_open_frame_reads_back_as_written(
    stream: int, replica: str, path: str, body: bytes
) -> None:
    got_stream, kind, payload = parse(open_frame(stream, replica, path, body))
    assert (got_stream, kind) == (stream, Kind.OPEN)
    assert parse_open(payload) == (replica, path, body)


def test_a_head_frame_reads_back_as_written() -> None:
    stream, kind, payload = parse(head_frame(7, 201, "text/event-stream"))
    assert (stream, kind) == (7, Kind.HEAD)
    assert parse_head(payload) == (201, "text/event-stream")


def test_data_passes_untouched() -> None:
    _, kind, payload = parse(frame(3, Kind.DATA, b"data: {}\n\n"))
    assert kind is Kind.DATA
    assert bytes(payload) == b"data: {}\n\n"


@pytest.mark.parametrize(
    "message",
    [b"", b"\x00\x00\x00", HEADER.pack(1, 99), HEADER.pack(1, 0)],
    ids=["empty", "short header", "unknown kind", "kind zero"],
)
def test_a_frame_without_a_valid_header_is_refused(message: bytes) -> None:
    with pytest.raises(BadFrame):
        parse(message)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00\x00\x00\x05{}",
        b"\x00\x00\x00\x02{}",
        b'\x00\x00\x00\x1e{"replica": "r", "path": "/x/"}',
        b'\x00\x00\x00\x1d{"replica": 1, "path": "/v1/"}',
    ],
    ids=["empty", "length past the end", "no fields", "a path outside /v1", "a replica not text"],
)
def test_an_open_frame_without_a_valid_head_is_refused(payload: bytes) -> None:
    with pytest.raises(BadFrame):
        parse_open(memoryview(payload))


@pytest.mark.parametrize(
    "payload",
    [b"not json", b'{"status": 99, "content_type": "x"}', b'{"status": "200", "content_type": "x"}',
     b'{"status": 200}'],
    ids=["not json", "status below 100", "status as text", "no content type"],
)  # fmt: skip
def test_a_head_frame_without_a_valid_head_is_refused(payload: bytes) -> None:
    with pytest.raises(BadFrame):
        parse_head(memoryview(payload))
