"""The gateway's side of routing: the client's country, the latency table, and the view's ready
replicas as candidates. The decisions are `hashgrid.routing`'s; this module only gathers inputs.
"""

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from hashgrid.contracts.gateway import KeyEntry, RoutedModel, RouteSite
from hashgrid.gateway.errors import BadRequest
from hashgrid.routing import BUILTIN, Candidate, LatencyTable, SiteInfo, country_code
from hashgrid.routing.latency import parse_rtt_csv

CLIENT_COUNTRY_HEADER = "x-hashgrid-client-country"
SITE_HEADER = "x-hashgrid-site"  # on answers: the site whose replica served


def load_latency(path: Path | None) -> LatencyTable:
    """The RTT table at `path` (CSV in the RIPE Atlas layout), or the built-in one."""
    if path is None:
        return BUILTIN
    return parse_rtt_csv(path.read_text())


def client_country(header: str | None, key: KeyEntry | None, default: str | None) -> str | None:
    """Where the client is: the request's header, else its key's country, else the gateway's.

    Raises BadRequest for a header that is no ISO 3166-1 alpha-2 code.
    """
    if header is not None:
        code = country_code(header)
        if code is None:
            raise BadRequest(
                f"The header {CLIENT_COUNTRY_HEADER} must be an ISO 3166-1 alpha-2 country code "
                f"such as US or KE; got {header[:20]!r}."
            )
        return code
    if key is not None and key.country:
        return country_code(key.country) or default
    return default


def site_infos(sites: Iterable[RouteSite]) -> dict[str, SiteInfo]:
    return {s.name: SiteInfo(s.name, country_code(s.country), s.power_state) for s in sites}


def candidates(routed: RoutedModel, in_flight: Counter[str]) -> list[Candidate]:
    """The model's ready replicas with their load: this gateway's count and the engine's own."""
    return [
        Candidate(
            r.replica_id, r.site, in_flight[r.replica_id], r.running, r.waiting, r.holder, r.score
        )
        for r in routed.replicas
    ]
