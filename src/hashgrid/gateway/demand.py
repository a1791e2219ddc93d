"""Demand as this gateway sees it, per deployment, reported to the control plane for autoscaling.

The hot path only counts: a request begins and ends (with its time to first token), or waits
for a model with no ready replica. A reporter sends the counts every `interval_s` while there is
anything to say (and once more when it falls to nothing), and at once when a request starts
waiting: that report is what wakes a deployment scaled to zero, so it must not sit out a tick.
"""

import asyncio
import contextlib
import math
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator

import aiohttp
import structlog

from hashgrid.contracts.gateway import DemandReport, ModelDemand

log = structlog.get_logger("hashgrid.gateway.demand")


class DemandMeter:
    def __init__(self) -> None:
        self.gateway = f"gw_{uuid.uuid4().hex[:12]}"  # this process: its reports replace its own
        self._in_flight: Counter[str] = Counter()
        self._held: Counter[str] = Counter()
        self._started: Counter[str] = Counter()
        self._ttfts: defaultdict[str, list[float]] = defaultdict(list)
        self.urgent = asyncio.Event()  # set when a request starts waiting for a first replica

    def begin(self, deployment: str) -> None:
        self._in_flight[deployment] += 1
        self._started[deployment] += 1

    def end(self, deployment: str, ttft_ms: float | None) -> None:
        self._in_flight[deployment] -= 1
        if ttft_ms is not None:
            self._ttfts[deployment].append(ttft_ms)

    @contextlib.contextmanager
    def holding(self, deployment: str) -> Iterator[None]:
        """Count a request as waiting for `deployment` to have a ready replica."""
        self._held[deployment] += 1
        self.urgent.set()
        try:
            yield
        finally:
            self._held[deployment] -= 1

    def report(self) -> DemandReport:
        """The counts now, and the requests started and TTFTs seen since the last report."""
        models = []
        for deployment in sorted(set(self._in_flight) | set(self._held) | set(self._started)):
            ttfts = self._ttfts.get(deployment)
            models.append(
                ModelDemand(
                    deployment=deployment,
                    # A held request is begun too; counted once, as held.
                    in_flight=self._in_flight[deployment] - self._held[deployment],
                    held=self._held[deployment],
                    started=self._started[deployment],
                    ttft_p90_ms=_p90(ttfts) if ttfts else None,
                )
            )
        self._started.clear()
        self._ttfts.clear()
        for counts in (self._in_flight, self._held):
            for deployment in [d for d, n in counts.items() if n == 0]:
                del counts[deployment]
        return DemandReport(gateway=self.gateway, models=models)


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]


class DemandReporter:
    def __init__(
        self,
        meter: DemandMeter,
        session: aiohttp.ClientSession,
        server_url: str,
        token: str,
        interval_s: float = 1.0,
        tunnel_url: str | None = None,
    ) -> None:
        self._meter = meter
        # Reported every time, so the control plane tells nodes where to dial while the
        # gateway is up: a gateway with a tunnel listener reports even with no demand.
        self._tunnel_url = tunnel_url
        self._session = session
        self._url = server_url.rstrip("/") + "/api/v1/gateway/demand"
        self._headers = {"authorization": f"Bearer {token}"}
        self._interval_s = interval_s

    async def run(self) -> None:
        said_something = False
        failing = False
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._meter.urgent.wait(), self._interval_s)
            self._meter.urgent.clear()
            report = self._meter.report()
            report.tunnel_url = self._tunnel_url
            if not report.models and not said_something and self._tunnel_url is None:
                continue  # nothing now, and the server already knows it
            try:
                async with self._session.post(
                    self._url,
                    data=report.model_dump_json(),
                    headers={**self._headers, "content-type": "application/json"},
                    timeout=aiohttp.ClientTimeout(total=5.0),
                ) as r:
                    r.raise_for_status()
            except (aiohttp.ClientError, TimeoutError) as e:
                if not failing:
                    log.warning("cannot report demand to the control plane", error=str(e))
                failing = True
                continue
            failing = False
            said_something = bool(report.models)
