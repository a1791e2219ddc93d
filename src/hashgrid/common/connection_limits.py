"""How much and how long a hashgrid HTTP process reads from its clients: the settings every
process's settings class (gateway, control plane) inherits, under that process's env prefix."""

from pydantic import Field
from pydantic_settings import BaseSettings

MIB = 1024 * 1024


class ConnectionLimits(BaseSettings):
    # The largest request body accepted: 413 above it, on Content-Length before reading. 4 MiB
    # holds a chat body filling a 256k-token context (about 1 MB of text, up to twice that
    # escaped in JSON) with room to spare, and the control plane's largest, a gateway's usage
    # batch (500 records, under 0.5 MB), eight times over; yet a body of several megabytes
    # (issue 14: 5 MB kept an engine busy 6.3 s before its 400) never reaches an engine. Raise
    # it for models with million-token contexts or images sent inline.
    max_body_bytes: int = Field(4 * MIB, ge=1)
    # The request line and headers together, checked at each read (so to within one read, at most
    # 250 KB); above it, 431 and the connection closes.
    max_header_bytes: int = Field(64 * 1024, ge=1024)
    # A request's line and headers must be complete this long after the connection opens, or
    # keep_alive_s + header_timeout_s after the previous response; else the connection closes
    # (with a 408 if part of a request came). Timeouts are checked every quarter of the shortest
    # (at most every second), so they act up to that much late.
    header_timeout_s: float = Field(10.0, gt=0)
    # A declared body that stops arriving for this long: 408 and the connection closes.
    body_timeout_s: float = Field(30.0, gt=0)
    # An idle kept-alive connection closes after this long. Behind a load balancer, set it above
    # the balancer's own idle timeout, so that the balancer never reuses a connection just closed.
    keep_alive_s: float = Field(5.0, gt=0)
    # Connections waiting for a request (new, kept alive, or still sending headers) beyond this
    # many close, the oldest first; connections whose request is being served do not count.
    max_idle_connections: int = Field(1000, ge=1)
