"""Request routing, pure: which replica serves a request. No I/O."""

from hashgrid.routing.replicas import ReplicaLoad, choose_replica

__all__ = ["ReplicaLoad", "choose_replica"]
