"""Choosing a replica among candidates: by load, with prefix affinity under a load bound."""

import math
from collections.abc import Sequence, Set
from dataclasses import dataclass

from hashgrid.routing.affinity import rendezvous_weight


@dataclass(frozen=True)
class ReplicaLoad:
    replica_id: str
    in_flight: int


def choose_replica(
    replicas: Sequence[ReplicaLoad], *, avoid: Set[str] = frozenset(), turn: int = 0
) -> ReplicaLoad | None:
    """The replica with the fewest requests in flight, skipping `avoid` (ejected or tried).

    Ties go round-robin by `turn`, so equal replicas share load instead of the first taking all.
    """
    usable = [r for r in replicas if r.replica_id not in avoid]
    if not usable:
        return None
    n = len(usable)
    return min(enumerate(usable), key=lambda ir: (ir[1].in_flight, (ir[0] - turn) % n))[1]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A ready replica as routing sees it: its site and its load."""

    replica_id: str
    site: str
    in_flight: int = 0  # requests the caller sent it that have not finished
    running: int | None = None  # the engine's own figures, None when unknown or stale
    waiting: int | None = None
    holder: str | None = None  # the customer a compute contract reserves it for
    score: float | None = None  # its node's reliability in [0, 1]; None: not scored, as 1

    @property
    def weight(self) -> float:
        """Its share of traffic relative to a fully reliable replica (`reliability_weight`)."""
        return reliability_weight(self.score)

    @property
    def load(self) -> int:
        """Requests on the replica: the larger of what the caller counts and what the engine
        reported. Not their sum: the engine's figure already holds the caller's requests of a
        few seconds ago, and holds other gateways' too, which the caller cannot count."""
        return max(self.in_flight, (self.running or 0) + (self.waiting or 0))


# The least weight a scored replica keeps: one that scored 0 still gets a probe's share when
# the others are busy, so a recovered node can earn its score back.
MIN_WEIGHT = 0.05


def reliability_weight(score: float | None) -> float:
    """How much traffic a replica of reliability `score` takes against one of score 1."""
    if score is None:
        return 1.0
    return min(1.0, max(MIN_WEIGHT, score))


def load_bound(candidates: Sequence[Candidate], epsilon: float) -> float:
    """The most load a replica may carry and still take one more request: (1 + eps) times the
    mean, plus one. The `+ 1` lets a prefix stack a request or two on its replica when all are
    nearly idle; the least loaded replica is always within the bound."""
    total = sum(c.load for c in candidates)
    return (1 + epsilon) * total / len(candidates) + 1


def choose_bounded(candidates: Sequence[Candidate], key: bytes, epsilon: float) -> Candidate:
    """Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018) over
    rendezvous order: the replica `key` weighs highest among those within `load_bound`.

    So a prefix stays on its replica until that replica is (1+eps) times busier than the mean
    (plus one), then spills to its next preferred replica, not to a random one.
    """
    bound = load_bound(candidates, epsilon)
    within = [c for c in candidates if c.load <= bound]
    if all(c.score is None for c in within):  # the common case: plain rendezvous order
        return max(within, key=lambda c: (rendezvous_weight(key, c.replica_id), c.replica_id))
    # Weighted rendezvous hashing (Schindelhauer and Schomaker): -w / ln(u), u uniform in (0, 1),
    # gives each replica a share of the prefixes in proportion to its reliability weight.
    return max(
        within,
        key=lambda c: (
            -c.weight / math.log((rendezvous_weight(key, c.replica_id) + 1) / (2**64 + 1)),
            c.replica_id,
        ),
    )


def choose_least_loaded(candidates: Sequence[Candidate], turn: int) -> Candidate:
    """The candidate least loaded for its reliability: `(load + 1) / weight`, so a replica of
    weight 1/2 takes a request when it has half the others' load (plus one); equal scores
    leave it the least loaded. Ties rotate by `turn` in replica id order."""
    least = min((c.load + 1) / c.weight for c in candidates)
    tied = sorted(
        (c for c in candidates if (c.load + 1) / c.weight == least), key=lambda c: c.replica_id
    )
    return tied[turn % len(tied)]
