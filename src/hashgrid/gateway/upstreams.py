"""How the proxy reaches a replica: down its node's tunnel, or straight to an endpoint.

Replicas that hashgrid's agents run are reached only over the tunnels their nodes opened
(`gateway/tunnel.py`): the gateway never connects to an address a node reported, so a node can
neither be reached from outside nor point the gateway at someone else's server. Only endpoints
an admin registered (external deployments) are called directly.
"""

from collections.abc import AsyncIterator
from typing import Protocol

import aiohttp

from hashgrid.contracts.gateway import RouteReplica
from hashgrid.gateway.tunnel import TunnelHub

JSON_HEADERS = {"content-type": "application/json"}
# Until the answer begins: a replica's engine may queue a request for a while.
HEAD_TIMEOUT_S = 600.0
CONNECT_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=HEAD_TIMEOUT_S)


class Body(Protocol):
    def iter_any(self) -> AsyncIterator[bytes]: ...


class Upstream(Protocol):
    """An answer as it arrives: an aiohttp response, or one down a tunnel."""

    @property
    def status(self) -> int: ...

    @property
    def content(self) -> Body: ...

    async def read(self) -> bytes: ...

    def release(self) -> object: ...

    def close(self) -> None: ...


class Upstreams:
    def __init__(self, session: aiohttp.ClientSession, tunnels: TunnelHub) -> None:
        self._session = session
        self.tunnels = tunnels

    def reachable(self, replica: RouteReplica) -> bool:
        """Whether a request could be sent to `replica` from here now."""
        return replica.via == "direct" or self.tunnels.connected(replica.node_id)

    async def post(self, replica: RouteReplica, path: str, body: bytes) -> Upstream:
        """Send `body` to `replica`'s `path`; return once its answer began. Raises
        aiohttp.ClientError (a connection error when the replica could not be reached)."""
        if replica.via == "tunnel":
            return await self.tunnels.open(
                replica.node_id, replica.replica_id, path, body, HEAD_TIMEOUT_S
            )
        # No x-request-id: llama-cpp-python's server refuses ids that are not UUIDs.
        return await self._session.post(
            replica.endpoint + path, data=body, headers=JSON_HEADERS, timeout=CONNECT_TIMEOUT
        )
