"""Request routing, pure: which site, then which replica, serves a request. No I/O.

`DefaultPolicy` (policy.py) combines site choice (sites.py: RTT from latency.py, load, power
state), replica choice (replicas.py: bounded-load prefix affinity from affinity.py) and passive
health (health.py). Callers own one policy and feed it each attempt's outcome.
"""

from hashgrid.routing.affinity import PREFIX_CHARS, affinity_key, prompt_prefix
from hashgrid.routing.countries import country_code
from hashgrid.routing.health import PassiveHealth
from hashgrid.routing.latency import BUILTIN, LatencyTable, parse_rtt_csv
from hashgrid.routing.policy import (
    Choice,
    DefaultPolicy,
    PolicyConfig,
    RouteRequest,
    RoutingPolicy,
)
from hashgrid.routing.replicas import Candidate, ReplicaLoad, choose_replica
from hashgrid.routing.reservations import Holding
from hashgrid.routing.sites import SiteInfo, SiteWeights

__all__ = [
    "BUILTIN",
    "PREFIX_CHARS",
    "Candidate",
    "Choice",
    "DefaultPolicy",
    "Holding",
    "LatencyTable",
    "PassiveHealth",
    "PolicyConfig",
    "ReplicaLoad",
    "RouteRequest",
    "RoutingPolicy",
    "SiteInfo",
    "SiteWeights",
    "affinity_key",
    "choose_replica",
    "country_code",
    "parse_rtt_csv",
    "prompt_prefix",
]
