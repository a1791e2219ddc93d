"""The agent's calls to the control plane: the client side of the agent protocol.

On aiohttp, which the agent already uses for downloads and engine metrics: one HTTP client
in the agent's memory rather than two, and calls that cancel cleanly.
"""

import ssl
from typing import Any

import aiohttp
import orjson

from hashgrid.contracts.agent import (
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    Assignments,
    Fingerprint,
    Heartbeat,
    HeartbeatAck,
    JoinRequest,
    JoinResponse,
    MinerOrders,
    MinerResults,
    ReplicaReport,
    Verification,
    VerificationReport,
)

CONNECT_S = 10.0
# The longest wait between calls to a control plane that is away. Once it is back, a node
# follows new assignments and orders, and its replicas' reports arrive, within seconds, not a
# backoff's 30 s; with full jitter, a fleet's retries still spread out. (Heartbeats retry
# within a fraction of the node TTL the server gives: `heartbeat.retry_cap`.)
AWAY_RETRY_CAP_S = 5.0
READ_S = 10.0  # beyond a long poll's own wait


class Unreachable(Exception):
    """The control plane gave no usable answer: the network, a timeout, a 5xx, or the client
    closed under the call (which is how shutdown ends a long poll). Worth retrying later."""


class Rejected(Exception):
    """The control plane refused a call (4xx): retrying the same call cannot help."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status


class ControlPlane:
    def __init__(
        self,
        server_url: str,
        credential: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """`ssl_context`: what an https control plane is verified by (agent/trust.py)."""
        self._base = server_url.rstrip("/")
        self._ssl = ssl_context
        self._headers = {PROTOCOL_HEADER: str(PROTOCOL_VERSION)}
        self._http: aiohttp.ClientSession | None = None
        self._closed = False
        self._credential: str | None = None
        if credential:
            self.use_credential(credential)

    @property
    def credential(self) -> str:
        """The node credential in use (the tunnels present it to gateways)."""
        assert self._credential is not None, "joined nodes have a credential"
        return self._credential

    def use_credential(self, credential: str) -> None:
        self._credential = credential
        self._headers["authorization"] = f"Bearer {credential}"

    async def close(self) -> None:
        self._closed = True
        if self._http is not None:
            await self._http.close()

    async def join(self, join_token: str, name: str, fingerprint: Fingerprint) -> JoinResponse:
        body = JoinRequest(join_token=join_token, name=name, fingerprint=fingerprint)
        answer = await self._call("POST", "/api/v1/agent/join", body.model_dump(mode="json"))
        return JoinResponse.model_validate(answer)

    async def heartbeat(
        self, body: Heartbeat | None = None, connect_s: float = CONNECT_S
    ) -> HeartbeatAck:
        """One beat; `connect_s` bounds the wait for a connection (a host that drops packets)."""
        body = body or Heartbeat()
        answer = await self._send(
            "POST",
            "/api/v1/agent/heartbeat",
            body.model_dump(mode="json"),
            connect_s=connect_s,
        )
        return HeartbeatAck.model_validate(answer)

    async def assignments(self, after: int, wait_s: float) -> Assignments:
        answer = await self._send(
            "GET",
            "/api/v1/agent/assignments",
            params={"after": str(after), "wait": str(wait_s)},
            read_s=wait_s + READ_S,
        )
        return Assignments.model_validate(answer)

    async def miner_orders(self, after: int, wait_s: float) -> MinerOrders:
        """What the site's miners should do (a site agent's long poll)."""
        answer = await self._send(
            "GET",
            "/api/v1/agent/miners",
            params={"after": str(after), "wait": str(wait_s)},
            read_s=wait_s + READ_S,
        )
        return MinerOrders.model_validate(answer)

    async def report_miners(self, results: MinerResults) -> None:
        await self._send("POST", "/api/v1/agent/miners/results", results.model_dump(mode="json"))

    async def report(self, replica_id: str, report: ReplicaReport) -> None:
        path = f"/api/v1/agent/replicas/{replica_id}/state"
        await self._send("PUT", path, report.model_dump(mode="json"))

    async def verify(self, report: VerificationReport) -> Verification:
        """Report the benchmark run at join; the control plane's verdict on it."""
        answer = await self._send(
            "POST", "/api/v1/agent/verification", report.model_dump(mode="json")
        )
        return Verification.model_validate(answer)

    async def rotate(self) -> JoinResponse:
        """A new credential for this node; the server stops taking the old one as it answers.

        The new credential is not used until `use_credential`: store it first
        (`registration.rotate` does both).
        """
        return JoinResponse.model_validate(await self._call("POST", "/api/v1/agent/rotate"))

    async def _send(self, method: str, path: str, body: object = None, **kwargs: Any) -> object:
        """One call; sent again once if the credential was rotated while it was on its way.

        Every call sent this way is safe to repeat: the refused one did nothing.
        """
        sent_with = self._credential
        try:
            return await self._call(method, path, body, **kwargs)
        except Rejected as e:
            if e.status == 401 and self._credential != sent_with:
                return await self._call(method, path, body, **kwargs)
            raise

    async def _call(
        self,
        method: str,
        path: str,
        body: object = None,
        params: dict[str, str] | None = None,
        read_s: float = READ_S,
        connect_s: float = CONNECT_S,
    ) -> object:
        if self._closed:
            raise Unreachable("the control plane client is closed")
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True),
                json_serialize=lambda o: orjson.dumps(o).decode(),
            )
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_s, sock_read=read_s)
        try:
            async with self._http.request(
                method,
                self._base + path,
                json=body,
                params=params,
                headers=self._headers,
                timeout=timeout,
            ) as r:
                status, content = r.status, await r.read()
        except (aiohttp.ClientError, TimeoutError, OSError, RuntimeError) as e:
            # RuntimeError: the session was closed under the call.
            raise Unreachable(f"{method} {path}: {type(e).__name__}: {e}") from e
        return _checked(status, content)


def _checked(status: int, content: bytes) -> object:
    if 400 <= status < 500:
        try:
            answer = orjson.loads(content)
            detail = str(answer.get("detail", answer)) if isinstance(answer, dict) else str(answer)
        except orjson.JSONDecodeError:
            detail = content.decode(errors="replace")
        raise Rejected(status, detail)
    if status >= 300:
        raise Unreachable(f"the control plane answered {status}")
    return orjson.loads(content) if content else None
