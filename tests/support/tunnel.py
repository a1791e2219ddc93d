"""A test node's real tunnel to a test's gateway (`agent/tunnel.py`), run in a thread of its own.

Tests that speak the agent protocol by hand (`LiveServer.join_node`) serve their replicas from
fakes: `engines` maps each replica id to the fake's URL, as the agent maps them to its engines.
"""

import asyncio
import threading
from types import TracebackType
from typing import Self

import aiohttp
import httpx

from hashgrid.agent.tunnel import TunnelClient


class NodeTunnel:
    def __init__(self, tunnel_url: str, node: httpx.Client) -> None:
        self.engines: dict[str, str] = {}
        self._url = tunnel_url
        self._credential = node.headers["authorization"].removeprefix("Bearer ")
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._client: TunnelClient | None = None

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def close(self) -> None:
        """Cut the tunnel now (the gateway sees it close) and stop dialling."""
        self.__exit__(None, None, None)

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected.is_set()

    @property
    def refusals(self) -> int:
        """How many times the gateway refused to open the tunnel."""
        return self._client.refusals if self._client is not None else 0

    def wait_connected(self, timeout_s: float = 20.0) -> None:
        assert self._connected.wait(timeout_s), f"the tunnel to {self._url} did not open"

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        async with aiohttp.ClientSession() as session:
            client = TunnelClient(
                self._url, lambda: self._credential, lambda: self.engines, session
            )
            self._client = client
            watching = asyncio.create_task(self._watch(client))
            await client.run(self._stop)
            watching.cancel()

    async def _watch(self, client: TunnelClient) -> None:
        await client.connected.wait()
        self._connected.set()
