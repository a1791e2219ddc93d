"""Replicas a compute contract reserves for one customer, its holder.

The holder's requests go to its reserved replicas first, and to the others only when none of
its own can take one (all tried, or cooling down after failures). Another customer's request
may use a reserved replica only while the holder has nothing in flight or queued on the model at
this gateway: idle reserved capacity serves everyone, and the holder never queues behind work
that was sent there while it was busy. A gateway knows only its own requests, so with several
gateways the holder is idle at each gateway it sends nothing through.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from hashgrid.routing.replicas import Candidate


@dataclass(frozen=True, slots=True)
class Holding:
    """Who sends a request for a model that has reserved replicas, and which holders of them
    have requests in flight or queued on it here."""

    customer: str
    busy: frozenset[str] = frozenset()

    def allows(self, holder: str | None) -> bool:
        """Whether the request may go to a replica reserved for `holder` (None: on demand)."""
        return holder is None or holder == self.customer or holder not in self.busy

    def split(self, candidates: Sequence[Candidate]) -> tuple[list[Candidate], list[Candidate]]:
        """(the customer's own reserved replicas, the others it may use now)."""
        own, others = [], []
        for c in candidates:
            if c.holder is not None and c.holder == self.customer:
                own.append(c)
            elif self.allows(c.holder):
                others.append(c)
        return own, others
