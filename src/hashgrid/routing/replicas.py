"""Choosing a replica inside the candidates for a model: the least loaded, taking turns on ties."""

from collections.abc import Sequence, Set
from dataclasses import dataclass


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
