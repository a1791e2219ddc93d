"""The agent's reporter against a control plane that is away for a while: the latest report of
each replica arrives, and a failure is never lost to the reports that follow it."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from hashgrid.agent.control_plane import ControlPlane
from hashgrid.agent.reporter import Reporter
from hashgrid.common.net import free_port
from hashgrid.contracts.agent import ReplicaReport
from hashgrid.contracts.states import ReplicaStatus

pytestmark = pytest.mark.timeout(60)


class ControlPlaneAway:
    """The report endpoint of the agent protocol, answering 503 while `away`."""

    def __init__(self) -> None:
        self.away = True
        self.taken: list[tuple[str, ReplicaStatus]] = []
        self.url = f"http://127.0.0.1:{free_port()}"
        app = web.Application()
        app.router.add_put("/api/v1/agent/replicas/{replica}/state", self._report)
        self._runner = web.AppRunner(app)

    async def _report(self, request: web.Request) -> web.Response:
        if self.away:
            return web.Response(status=503)
        report = ReplicaReport.model_validate(await request.json())
        self.taken.append((request.match_info["replica"], report.status))
        return web.json_response({})

    async def start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", int(self.url.rsplit(":", 1)[1])).start()

    async def stop(self) -> None:
        await self._runner.cleanup()


@pytest.fixture
async def control_plane() -> AsyncIterator[ControlPlaneAway]:
    fake = ControlPlaneAway()
    await fake.start()
    yield fake
    await fake.stop()


async def test_a_failure_is_sent_before_the_restart_reports_that_follow_it(
    control_plane: ControlPlaneAway,
) -> None:
    client = ControlPlane(control_plane.url, "credential")
    reporter = Reporter(client)
    running = asyncio.create_task(reporter.run())
    try:
        for status in ("starting", "failed", "starting", "failed", "starting", "ready"):
            reporter.report("r1", ReplicaReport(status=ReplicaStatus(status), reason=status))
        reporter.report("r2", ReplicaReport(status=ReplicaStatus.STARTING))
        reporter.report("r2", ReplicaReport(status=ReplicaStatus.READY))
        await asyncio.sleep(0.2)  # a resend or two while away
        control_plane.away = False
        await reporter.flush(within_s=30)
        by_replica = {
            replica: [s for r, s in control_plane.taken if r == replica] for replica in ("r1", "r2")
        }
        assert by_replica == {"r1": ["failed", "ready"], "r2": ["ready"]}
    finally:
        reporter.close()
        await client.close()
        await running
