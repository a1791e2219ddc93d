"""A health probe on plain asyncio streams: cheap, and cancellable at any await."""

import asyncio


async def http_ok(host: str, port: int, path: str, within_s: float = 2.0) -> bool:
    """True when GET `path` answers 2xx within `within_s`."""
    try:
        async with asyncio.timeout(within_s):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
                await writer.drain()
                status_line = await reader.readline()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return False
    parts = status_line.split()
    return len(parts) >= 2 and parts[1].startswith(b"2")
