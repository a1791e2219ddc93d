"""External endpoints: routed only while they answer.

An external deployment (bring your own endpoint) has no agent to report its engine ready or
failed, so this reconciler asks the endpoint itself: `GET {endpoint}/v1/models`, which every
OpenAI-compatible server answers, each `interval_s` (and at once for a new one). The answer
sets the deployment's `condition`: None while it answers with a 2xx, else why not. The gateway
view lists the endpoint as a replica only while the condition is None, and an event marks each
change. Between probes the gateways' passive health ejects an endpoint that fails requests.
"""

import asyncio
import time

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hashgrid.server.changes import Changes
from hashgrid.server.deployments import events
from hashgrid.server.deployments.tables import Deployment

PROBE_TIMEOUT_S = 3.0


class EndpointReconciler:
    name = "endpoints"

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], changes: Changes, interval_s: float
    ) -> None:
        self._sessions = sessions
        self._changes = changes
        self._interval_s = interval_s
        self._probed: dict[str, float] = {}  # deployment id -> monotonic time of its last probe

    async def reconcile(self) -> None:
        """Probe every external endpoint due (never probed, or not for `interval_s`); store
        what changed. No session is held while probes wait on the network."""
        now = time.monotonic()
        async with self._sessions() as session:
            external = (
                await session.execute(
                    select(Deployment.id, Deployment.endpoint).where(
                        Deployment.endpoint.is_not(None)
                    )
                )
            ).all()
        ids = {i for i, _ in external}
        self._probed = {i: t for i, t in self._probed.items() if i in ids}
        due = [
            (i, endpoint)
            for i, endpoint in external
            if endpoint is not None
            and (i not in self._probed or now - self._probed[i] >= self._interval_s)
        ]
        if not due:
            return
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S, trust_env=False) as http:
            answers = await asyncio.gather(*(probe(http, endpoint) for _, endpoint in due))
        changed = False
        async with self._sessions() as session:
            for (deployment_id, endpoint), why_not in zip(due, answers, strict=True):
                self._probed[deployment_id] = now
                deployment = await session.get(Deployment, deployment_id)
                if deployment is None:
                    continue  # deleted while the probe waited
                condition = None if why_not is None else f"endpoint not answering: {why_not}"
                if deployment.condition != condition:
                    events.record(
                        session, deployment_id, condition or f"endpoint {endpoint} answers"
                    )
                    deployment.condition = condition
                    changed = True
            await session.commit()
        if changed:
            await self._changes.bump()


async def probe(http: httpx.AsyncClient, endpoint: str) -> str | None:
    """None when `endpoint` lists its models; otherwise why it did not, in words."""
    try:
        answer = await http.get(f"{endpoint}/v1/models")
    except httpx.HTTPError as e:
        return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    if not answer.is_success:
        return f"GET /v1/models answered {answer.status_code}"
    return None
