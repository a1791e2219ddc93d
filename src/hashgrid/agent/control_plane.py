"""The agent's calls to the control plane: the client side of the agent protocol."""

from typing import Any

import httpx

from hashgrid.contracts.agent import (
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    Assignments,
    Fingerprint,
    Heartbeat,
    HeartbeatAck,
    JoinRequest,
    JoinResponse,
    ReplicaReport,
    Verification,
    VerificationReport,
)


class Rejected(Exception):
    """The control plane refused a call (4xx): retrying the same call cannot help."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status


class ControlPlane:
    def __init__(self, server_url: str, credential: str | None = None) -> None:
        self._http = httpx.AsyncClient(
            base_url=server_url.rstrip("/"),
            headers={PROTOCOL_HEADER: str(PROTOCOL_VERSION)},
            timeout=httpx.Timeout(10.0),
        )
        self._credential: str | None = None
        if credential:
            self.use_credential(credential)

    def use_credential(self, credential: str) -> None:
        self._credential = credential
        self._http.headers["authorization"] = f"Bearer {credential}"

    async def close(self) -> None:
        await self._http.aclose()

    async def join(self, join_token: str, name: str, fingerprint: Fingerprint) -> JoinResponse:
        body = JoinRequest(join_token=join_token, name=name, fingerprint=fingerprint)
        r = await self._http.post("/api/v1/agent/join", json=body.model_dump(mode="json"))
        return JoinResponse.model_validate(_checked(r))

    async def heartbeat(self, body: Heartbeat | None = None) -> HeartbeatAck:
        body = body or Heartbeat()
        r = await self._send("POST", "/api/v1/agent/heartbeat", json=body.model_dump(mode="json"))
        return HeartbeatAck.model_validate(_checked(r))

    async def assignments(self, after: int, wait_s: float) -> Assignments:
        r = await self._send(
            "GET",
            "/api/v1/agent/assignments",
            params={"after": after, "wait": wait_s},
            timeout=httpx.Timeout(10.0, read=wait_s + 10.0),
        )
        return Assignments.model_validate(_checked(r))

    async def report(self, replica_id: str, report: ReplicaReport) -> None:
        r = await self._send(
            "PUT",
            f"/api/v1/agent/replicas/{replica_id}/state",
            json=report.model_dump(mode="json"),
        )
        _checked(r)

    async def verify(self, report: VerificationReport) -> Verification:
        """Report the benchmark run at join; the control plane's verdict on it."""
        r = await self._send(
            "POST", "/api/v1/agent/verification", json=report.model_dump(mode="json")
        )
        return Verification.model_validate(_checked(r))

    async def rotate(self) -> JoinResponse:
        """A new credential for this node; the server stops taking the old one as it answers.

        The new credential is not used until `use_credential`: store it first
        (`registration.rotate` does both).
        """
        r = await self._http.post("/api/v1/agent/rotate")
        return JoinResponse.model_validate(_checked(r))

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One call; sent again once if the credential was rotated while it was on its way.

        Every call sent this way is safe to repeat: the refused one did nothing.
        """
        sent_with = self._credential
        r = await self._http.request(method, url, **kwargs)
        if r.status_code == 401 and self._credential != sent_with:
            r = await self._http.request(method, url, **kwargs)
        return r


def _checked(r: httpx.Response) -> object:
    if 400 <= r.status_code < 500:
        try:
            detail = str(r.json().get("detail", r.text))
        except ValueError:
            detail = r.text
        raise Rejected(r.status_code, detail)
    r.raise_for_status()
    return r.json() if r.content else None
