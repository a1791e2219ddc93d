"""Choosing a replica: the least loaded, skipping those to avoid, taking turns on ties."""

import itertools
from collections import Counter

from hashgrid.routing.replicas import ReplicaLoad, choose_replica


def loads(**in_flight: int) -> list[ReplicaLoad]:
    return [ReplicaLoad(rid, n) for rid, n in in_flight.items()]


def test_least_in_flight_wins() -> None:
    chosen = choose_replica(loads(a=3, b=1, c=2))
    assert chosen == ReplicaLoad("b", 1)


def test_least_in_flight_wins_whatever_the_turn() -> None:
    replicas = loads(a=5, b=0, c=5, d=7)
    assert {choose_replica(replicas, turn=t).replica_id for t in range(10)} == {"b"}


def test_avoid_excludes_even_the_least_loaded() -> None:
    chosen = choose_replica(loads(a=3, b=1, c=2), avoid={"b"})
    assert chosen is not None
    assert chosen.replica_id == "c"


def test_none_when_every_replica_is_avoided() -> None:
    assert choose_replica(loads(a=0, b=0), avoid={"a", "b"}) is None


def test_none_when_there_are_no_replicas() -> None:
    assert choose_replica([]) is None
    assert choose_replica([], avoid={"x"}, turn=3) is None


def test_avoiding_unknown_ids_changes_nothing() -> None:
    replicas = loads(a=2, b=1)
    assert choose_replica(replicas, avoid={"zz"}) == choose_replica(replicas)


def test_equal_replicas_take_turns() -> None:
    replicas = loads(a=1, b=1, c=1)
    chosen = [choose_replica(replicas, turn=t).replica_id for t in range(6)]  # type: ignore[union-attr]
    assert Counter(chosen) == Counter({"a": 2, "b": 2, "c": 2})
    # Consecutive turns never pick the same replica twice in a row.
    assert all(x != y for x, y in itertools.pairwise(chosen))


def test_turns_rotate_only_among_the_least_loaded() -> None:
    replicas = loads(a=1, busy=4, b=1)
    chosen = {choose_replica(replicas, turn=t).replica_id for t in range(6)}  # type: ignore[union-attr]
    assert chosen == {"a", "b"}


def test_turns_rotate_among_the_replicas_left_after_avoid() -> None:
    replicas = loads(a=0, b=0, c=0)
    chosen = {
        choose_replica(replicas, avoid={"b"}, turn=t).replica_id  # type: ignore[union-attr]
        for t in range(4)
    }
    assert chosen == {"a", "c"}


def test_large_turn_numbers_still_rotate() -> None:
    replicas = loads(a=0, b=0)
    chosen = {
        choose_replica(replicas, turn=t).replica_id  # type: ignore[union-attr]
        for t in range(10**12, 10**12 + 2)
    }
    assert chosen == {"a", "b"}
