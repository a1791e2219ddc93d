"""The tunnel between a node and a gateway: the frames both sides speak over one WebSocket.

A node behind its site's NAT opens no port: its agent dials *out* to each gateway's tunnel
listener (`wss://gateway:7443/tunnel`, the node credential as a bearer token) and keeps the
connection; the gateway sends requests down it and reads the answers back. Many requests share
one connection, each on its own stream, as HTTP/2 multiplexes them; the gateway numbers streams.

Each WebSocket message is one binary frame: a 5-byte header (stream id, u32 big-endian; kind,
u8), then the payload.

gateway -> node
- `OPEN`: a request. Payload: u32 length of a JSON head, the head (`{"replica": id, "path":
  "/v1/chat/completions"}`), then the request body (JSON, whole).
- `CANCEL`: the client went away: stop the request (closing the engine's connection stops its
  generation). No payload.

node -> gateway
- `HEAD`: the engine's answer began. Payload: JSON `{"status": 200, "content_type": "..."}`.
- `DATA`: bytes of the answer body, as the engine sent them (a stream's events pass untouched).
- `END`: the answer is whole. No payload.
- `FAIL`: the request failed on the node. Payload: UTF-8 reason. Before `HEAD` it means the
  engine could not be reached (the gateway tries another replica); after, the answer was cut.

Flow control is TCP's for the connection as a whole: engines produce tokens far slower than a
link carries them, and a stream whose client reads slowly is buffered at the gateway (bounded
by the engine's output for that one request) rather than stalling the connection.
"""

import struct
from enum import IntEnum
from typing import Any

import orjson

PATH = "/tunnel"
HEADER = struct.Struct("!IB")
_LENGTH = struct.Struct("!I")
# How often either side pings an idle tunnel: a connection a NAT silently dropped is found
# within about twice this, and the ping keeps the NAT's mapping alive meanwhile.
HEARTBEAT_S = 15.0
# The largest frame either side accepts: a request body (the gateway bounds bodies far lower)
# with its head.
MAX_FRAME_BYTES = 64 * 2**20


class Kind(IntEnum):
    OPEN = 1
    CANCEL = 2
    HEAD = 3
    DATA = 4
    END = 5
    FAIL = 6


class BadFrame(ValueError):
    """A frame that does not follow this module's format."""


def frame(stream: int, kind: Kind, payload: bytes = b"") -> bytes:
    return HEADER.pack(stream, kind) + payload


def parse(message: bytes) -> tuple[int, Kind, memoryview]:
    """A frame's stream id, kind and payload (a view: no copy). Raises BadFrame."""
    if len(message) < HEADER.size:
        raise BadFrame(f"a frame of {len(message)} bytes has no header")
    stream, kind = HEADER.unpack_from(message)
    try:
        return stream, Kind(kind), memoryview(message)[HEADER.size :]
    except ValueError:
        raise BadFrame(f"unknown frame kind {kind}") from None


def open_frame(stream: int, replica: str, path: str, body: bytes) -> bytes:
    head = orjson.dumps({"replica": replica, "path": path})
    return HEADER.pack(stream, Kind.OPEN) + _LENGTH.pack(len(head)) + head + body


def parse_open(payload: memoryview) -> tuple[str, str, bytes]:
    """An `OPEN` payload's replica id, path and body. Raises BadFrame."""
    try:
        (length,) = _LENGTH.unpack_from(payload)
        head: Any = orjson.loads(payload[_LENGTH.size : _LENGTH.size + length])
        replica, path = head["replica"], head["path"]
    except (struct.error, orjson.JSONDecodeError, KeyError, TypeError) as e:
        raise BadFrame(f"an OPEN frame without a valid head: {e}") from None
    if not (isinstance(replica, str) and isinstance(path, str) and path.startswith("/v1/")):
        raise BadFrame("an OPEN frame must name a replica and a /v1/ path")
    return replica, path, bytes(payload[_LENGTH.size + length :])


def head_frame(stream: int, status: int, content_type: str) -> bytes:
    return frame(stream, Kind.HEAD, orjson.dumps({"status": status, "content_type": content_type}))


def parse_head(payload: memoryview) -> tuple[int, str]:
    """A `HEAD` payload's status and content type. Raises BadFrame."""
    try:
        head: Any = orjson.loads(payload)
        status, content_type = head["status"], head["content_type"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as e:
        raise BadFrame(f"a HEAD frame without a valid head: {e}") from None
    if not (isinstance(status, int) and 100 <= status <= 599 and isinstance(content_type, str)):
        raise BadFrame("a HEAD frame must carry a status and a content type")
    return status, content_type
