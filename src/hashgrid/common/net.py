"""Ports and addresses."""

import socket
from urllib.parse import urlsplit


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_taken(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on `port`: binding it fails, as it would for a server."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As uvicorn binds: a port held only by connections closing (TIME_WAIT) is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
        return False


def outbound_address(server_url: str) -> str:
    """The local address this host uses to reach `server_url`: what peers on that path see."""
    parts = urlsplit(server_url)
    host = parts.hostname or "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        # A UDP connect sends nothing; it only asks the kernel to choose a route.
        s.connect((host, parts.port or 80))
        return str(s.getsockname()[0])
