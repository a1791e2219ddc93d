"""Choosing a site: nearest the client, unless busy, and only where power lets it serve.

Sites are ranked by (power state not active, score, name). The score is in milliseconds:

    score = RTT(client country, site country)
          + load_ms  * (requests per usable replica of the site)
          + queue_ms * (requests engines report waiting, per usable replica)

so a busy near site loses to an idle far one once its queue costs more than the extra distance.
A curtailed or draining site ranks after every active one whatever its score: it serves only
when no active site can. With no client country every RTT counts as 0 and load alone decides.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hashgrid.contracts.states import SitePowerState
from hashgrid.routing.latency import UNKNOWN_MS, LatencyTable
from hashgrid.routing.replicas import Candidate

# States whose sites serve only when no other can (a site pausing flex work serves firm as usual).
AVOIDED = frozenset({SitePowerState.CURTAILED, SitePowerState.DRAINING})


@dataclass(frozen=True, slots=True)
class SiteInfo:
    name: str
    country: str | None = None  # ISO 3166-1 alpha-2; None: unknown (ranked as far away)
    power_state: SitePowerState = SitePowerState.ACTIVE


@dataclass(frozen=True)
class SiteWeights:
    load_ms: float = 40.0  # per request in flight per replica
    queue_ms: float = 250.0  # per request waiting in an engine's queue, per replica


def site_score(
    site: SiteInfo,
    replicas: Sequence[Candidate],
    client_country: str | None,
    latency: LatencyTable,
    weights: SiteWeights,
) -> float:
    """The site's score for a client (lower is better); `replicas` are its usable ones."""
    n = len(replicas)
    rtt = 0.0
    if client_country is not None:
        rtt = UNKNOWN_MS if site.country is None else latency.rtt_ms(client_country, site.country)
    load = sum(c.load for c in replicas) / n
    waiting = sum(c.waiting or 0 for c in replicas) / n
    return rtt + weights.load_ms * load + weights.queue_ms * waiting


def rank_sites(
    replicas: Sequence[Candidate],
    sites: Mapping[str, SiteInfo],
    client_country: str | None,
    latency: LatencyTable,
    weights: SiteWeights,
) -> list[str]:
    """Names of the sites holding `replicas`, best first."""
    by_site: dict[str, list[Candidate]] = {}
    for c in replicas:
        by_site.setdefault(c.site, []).append(c)

    def key(name: str) -> tuple[bool, float, str]:
        info = sites.get(name) or SiteInfo(name)
        score = site_score(info, by_site[name], client_country, latency, weights)
        return (info.power_state in AVOIDED, score, name)

    return sorted(by_site, key=key)
