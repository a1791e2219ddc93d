"""Server-sent events, split as they arrive so each complete event is passed on at once."""

from collections.abc import Iterator

import orjson


class EventSplitter:
    """Feed it bytes as they come; it returns the complete events, separators included."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> Iterator[bytes]:
        self._buffer += data
        while True:
            end = _event_end(self._buffer)
            if end < 0:
                return
            event, self._buffer = self._buffer[:end], self._buffer[end:]
            yield event

    def rest(self) -> bytes:
        rest, self._buffer = self._buffer, b""
        return rest


def _event_end(buffer: bytes) -> int:
    ends = [i + len(sep) for sep in (b"\n\n", b"\r\n\r\n") if (i := buffer.find(sep)) >= 0]
    return min(ends) if ends else -1


def event_json(event: bytes) -> dict[str, object] | None:
    """The JSON object in an event's `data:` line, or None ([DONE], comments, pings)."""
    for line in event.splitlines():
        if line.startswith(b"data:"):
            payload = line[5:].strip()
            if payload.startswith(b"{"):
                try:
                    value = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    return None
                return value if isinstance(value, dict) else None
    return None
