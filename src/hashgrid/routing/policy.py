"""The routing policy: a site, then a replica in it, for one attempt of one request.

The caller (the gateway; later the simulator, on its own clock) asks `choose` before each
attempt with the model's ready replicas and the ones this request already tried, and tells the
policy how each attempt went (`succeeded`, `failed`), which feeds passive health. Because tried
replicas drop out and the site ranking is kept, a retry goes to another replica of the same site
while it has one, then to the next site.
"""

import itertools
import time
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Protocol

from hashgrid.routing.health import PassiveHealth
from hashgrid.routing.latency import BUILTIN, LatencyTable
from hashgrid.routing.replicas import Candidate, choose_bounded, choose_least_loaded
from hashgrid.routing.reservations import Holding
from hashgrid.routing.sites import SiteInfo, SiteWeights, rank_sites


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """What routing knows of a request."""

    client_country: str | None = None  # ISO 3166-1 alpha-2; None: unknown
    affinity: bytes | None = None  # `affinity_key(prompt_prefix(body))`; None: no affinity
    # Who sends it, for a model with reserved replicas (`reservations.py`); None: the model
    # has none, and every candidate is alike.
    holding: Holding | None = None


@dataclass(frozen=True, slots=True)
class Choice:
    replica_id: str
    site: str
    probe: bool = False  # the replica was ejected; this request tests whether it is back


class RoutingPolicy(Protocol):
    """Where one attempt of a request goes, and what the policy learns from its outcome."""

    def choose(
        self,
        request: RouteRequest,
        candidates: Sequence[Candidate],
        sites: Mapping[str, SiteInfo],
        tried: Set[str] = frozenset(),
    ) -> Choice | None:
        """A replica among `candidates` not in `tried`; None when none is left."""
        ...

    def succeeded(self, replica_id: str) -> None:
        """The replica answered (before the caller passed on any byte)."""
        ...

    def failed(self, replica_id: str) -> None:
        """The replica could not take the request: connection failed, or 502/503/504."""
        ...

    def ejected(self) -> Mapping[str, float]:
        """Replicas passive health keeps out, with seconds left in their cool-down."""
        ...


@dataclass(frozen=True)
class PolicyConfig:
    weights: SiteWeights = field(default_factory=SiteWeights)
    epsilon: float = 0.25  # prefix affinity holds while load <= (1 + epsilon) * mean + 1
    eject_s: float = 10.0  # first cool-down of a failing replica
    eject_max_s: float = 120.0  # cool-downs double per failure in a row up to this


class DefaultPolicy:
    """Nearest usable site by RTT, load and power state; in it, the prompt prefix's replica by
    rendezvous hashing under a load bound, or the least loaded; ejected replicas only when no
    other is left. Where replicas are reserved, the holder's own come first and another
    customer's request avoids those of busy holders (`reservations.py`)."""

    def __init__(
        self,
        latency: LatencyTable = BUILTIN,
        config: PolicyConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.latency = latency
        self.config = config or PolicyConfig()
        self._clock = clock
        self.health = PassiveHealth(clock, self.config.eject_s, self.config.eject_max_s)
        self._turn = itertools.count()

    def choose(
        self,
        request: RouteRequest,
        candidates: Sequence[Candidate],
        sites: Mapping[str, SiteInfo],
        tried: Set[str] = frozenset(),
    ) -> Choice | None:
        untried = [c for c in candidates if c.replica_id not in tried]
        if not untried:
            return None
        now = self._clock()
        if request.holding is None:
            # Every replica left is cooling down: trying one beats failing the request outright.
            pool = self._usable(untried, now) or untried
        else:
            own, others = request.holding.split(untried)
            pool = self._usable(own, now) or self._usable(others, now) or own + others
            if not pool:
                return None
        first = pool[0].site
        if all(c.site == first for c in pool):  # one site (the common case): nothing to rank
            site, in_site = first, pool
        else:
            ranked = rank_sites(
                pool, sites, request.client_country, self.latency, self.config.weights
            )
            site = ranked[0]
            in_site = [c for c in pool if c.site == site]
        if request.affinity is not None:
            chosen = choose_bounded(in_site, request.affinity, self.config.epsilon)
        else:
            chosen = choose_least_loaded(in_site, next(self._turn))
        probe = self.health.begin(chosen.replica_id, now)
        return Choice(chosen.replica_id, chosen.site, probe)

    def _usable(self, candidates: list[Candidate], now: float) -> list[Candidate]:
        """Those of `candidates` passive health does not keep out."""
        if not self.health:
            return candidates
        return [c for c in candidates if self.health.available(c.replica_id, now)]

    def succeeded(self, replica_id: str) -> None:
        self.health.succeeded(replica_id)

    def failed(self, replica_id: str) -> None:
        self.health.failed(replica_id)

    def ejected(self) -> Mapping[str, float]:
        return self.health.ejected()
