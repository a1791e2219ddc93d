"""Server-sent events: split whole as bytes arrive, and the JSON read out of each."""

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from hashgrid.gateway.sse import EventSplitter, event_json

EVENTS = [
    b'data: {"id":"c1","choices":[{"delta":{"content":"he"}}]}\n\n',
    b": keep-alive\n\n",
    b'data: {"id":"c1","choices":[{"delta":{"content":"llo \xc3\xa9"}}]}\n\n',
    b'event: message\ndata: {"id":"c1","usage":{"total_tokens":3}}\n\n',
    b"data: [DONE]\n\n",
]
STREAM = b"".join(EVENTS)


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


def feed_all(pieces: list[bytes]) -> tuple[list[bytes], bytes]:
    splitter = EventSplitter()
    out: list[bytes] = []
    for piece in pieces:
        out.extend(splitter.feed(piece))
    return out, splitter.rest()


def test_whole_stream_in_one_piece_gives_every_event_in_order() -> None:
    assert feed_all([STREAM]) == (EVENTS, b"")


def test_one_byte_at_a_time_gives_every_event_in_order() -> None:
    pieces = [STREAM[i : i + 1] for i in range(len(STREAM))]
    assert feed_all(pieces) == (EVENTS, b"")


def test_event_is_held_until_its_blank_line_arrives() -> None:
    splitter = EventSplitter()
    assert list(splitter.feed(b'data: {"a":1}\n')) == []
    assert list(splitter.feed(b"\n")) == [b'data: {"a":1}\n\n']


def test_separator_split_across_pieces() -> None:
    assert feed_all([b"data: x\n", b"\ndata: y\r\n\r", b"\n"]) == (
        [b"data: x\n\n", b"data: y\r\n\r\n"],
        b"",
    )


def test_crlf_separators() -> None:
    stream = b'data: {"a":1}\r\n\r\ndata: [DONE]\r\n\r\n'
    assert feed_all([stream]) == ([b'data: {"a":1}\r\n\r\n', b"data: [DONE]\r\n\r\n"], b"")


def test_mixed_lf_and_crlf_events_come_out_in_order() -> None:
    stream = b"data: 1\n\ndata: 2\r\n\r\ndata: 3\n\n"
    assert feed_all([stream])[0] == [b"data: 1\n\n", b"data: 2\r\n\r\n", b"data: 3\n\n"]


def test_rest_returns_the_unterminated_tail_once() -> None:
    splitter = EventSplitter()
    assert list(splitter.feed(b"data: 1\n\ndata: partial")) == [b"data: 1\n\n"]
    assert splitter.rest() == b"data: partial"
    assert splitter.rest() == b""


def test_rest_is_empty_after_only_whole_events() -> None:
    assert feed_all([b"data: 1\n\n"])[1] == b""


def test_many_events_in_one_piece_are_all_returned() -> None:
    stream = b"".join(b"data: %d\n\n" % i for i in range(50))
    events, _ = feed_all([stream])
    assert events == [b"data: %d\n\n" % i for i in range(50)]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, len(STREAM)), max_size=12))
def test_any_split_of_the_stream_gives_the_same_events(cuts: list[int]) -> None:
    assert feed_all(split_at(STREAM, cuts)) == (EVENTS, b"")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, len(STREAM) + 9), max_size=8))
def test_any_split_keeps_an_unterminated_tail_for_rest(cuts: list[int]) -> None:
    tail = b'data: {"cut'
    assert feed_all(split_at(STREAM + tail, cuts)) == (EVENTS, tail)


def test_event_json_returns_the_object_of_a_data_line() -> None:
    assert event_json(EVENTS[0]) == {"id": "c1", "choices": [{"delta": {"content": "he"}}]}


def test_event_json_finds_data_after_other_fields() -> None:
    assert event_json(EVENTS[3]) == {"id": "c1", "usage": {"total_tokens": 3}}


def test_event_json_accepts_data_without_a_space_and_crlf() -> None:
    assert event_json(b'data:{"a":1}\r\n\r\n') == {"a": 1}


def test_event_json_is_none_for_done() -> None:
    assert event_json(b"data: [DONE]\n\n") is None


def test_event_json_is_none_for_comments_and_empty_events() -> None:
    assert event_json(b": ping\n\n") is None
    assert event_json(b"\n\n") is None
    assert event_json(b"") is None


def test_event_json_is_none_for_invalid_json() -> None:
    assert event_json(b'data: {"a": \n\n') is None


def test_event_json_is_none_for_non_objects() -> None:
    assert event_json(b"data: [1, 2]\n\n") is None
    assert event_json(b"data: 42\n\n") is None
    assert event_json(b'data: "text"\n\n') is None
