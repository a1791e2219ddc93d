"""Demand that gateways report: requests in flight and held per deployment, kept in memory only;
with it, where each gateway takes node tunnels (what the heartbeat tells nodes to dial).

Each gateway reports about every second (`gateway/demand.py`), and at once when a request starts
waiting for a model with no ready replica. A report replaces the gateway's one before and goes
stale after `stale_after_s`, so a gateway that stops counts for nothing. Like engine loads, none
of it is written to the database: it is worthless seconds later. When each deployment last had a
request is kept too, for scaling to zero; a control plane that restarts forgets it, and the
autoscaler then counts from its own start (see `scheduler/autoscale.py`).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

from hashgrid.contracts.gateway import DemandReport, ModelDemand
from hashgrid.scheduler.autoscale import Demand


@dataclass
class _Report:
    at: float
    models: dict[str, ModelDemand]  # by deployment id
    tunnel_url: str | None = None


class GatewayDemand:
    def __init__(self, stale_after_s: float = 10.0, clock: Callable[[], float] = time.time) -> None:
        self._stale_after_s = stale_after_s
        self._clock = clock
        self._by_gateway: dict[str, _Report] = {}
        self._last_request: dict[str, float] = {}  # deployment id -> when a request was seen

    def record(self, report: DemandReport) -> None:
        now = self._clock()
        models = {m.deployment: m for m in report.models}
        self._by_gateway[report.gateway] = _Report(now, models, report.tunnel_url)
        for deployment, m in models.items():
            if m.started or m.in_flight or m.held:
                self._last_request[deployment] = now

    def tunnel_urls(self) -> list[str]:
        """Where the gateways that reported lately take node tunnels: what nodes dial."""
        now = self._clock()
        return sorted(
            {
                r.tunnel_url
                for r in self._by_gateway.values()
                if r.tunnel_url is not None and now - r.at <= self._stale_after_s
            }
        )

    def of(self, deployment: str, engine_load: float = 0.0) -> Demand:
        """`deployment`'s demand over every fresh report, the engines' own load considered:
        the larger of what gateways have in flight and what engines say they run or queue."""
        now = self._clock()
        in_flight = held = 0
        ttft: float | None = None
        for gateway, report in list(self._by_gateway.items()):
            if now - report.at > self._stale_after_s:
                del self._by_gateway[gateway]
                continue
            m = report.models.get(deployment)
            if m is None:
                continue
            in_flight += m.in_flight
            held += m.held
            if m.ttft_p90_ms is not None:
                ttft = m.ttft_p90_ms if ttft is None else max(ttft, m.ttft_p90_ms)
        return Demand(
            load=max(float(in_flight), engine_load) + held,
            held=held,
            ttft_p90_ms=ttft,
            last_request_at=self._last_request.get(deployment),
        )
