"""Routing decisions per second: the default policy (site by RTT, load and power; replica by
bounded-load prefix affinity; passive health) against plain least-in-flight `choose_replica`.

    python bench/routing_policy.py [--decisions 20000] [--rtt-table PATH]

One decision is what the gateway asks per attempt: candidates built from loads, then a choice.
The policy's figure includes hashing the prompt prefix (done once per request in the gateway).
Single-threaded CPU figures on a shared machine: compare rows of the same run.
"""

import argparse
import random
import time
from collections.abc import Callable
from pathlib import Path

from hashgrid.routing import (
    BUILTIN,
    Candidate,
    DefaultPolicy,
    LatencyTable,
    ReplicaLoad,
    RouteRequest,
    SiteInfo,
    affinity_key,
    choose_replica,
    parse_rtt_csv,
    prompt_prefix,
)

COUNTRIES = ["US", "KE", "ZA", "AE", "SA", "DE", "BR", "PY", "CA", "JP"]


def fleet(
    replicas: int, sites: int, rnd: random.Random
) -> tuple[list[Candidate], dict[str, SiteInfo]]:
    where = {f"s{i}": SiteInfo(f"s{i}", COUNTRIES[i % len(COUNTRIES)]) for i in range(sites)}
    names = sorted(where)
    candidates = [
        Candidate(
            f"r{i:04d}",
            names[i % sites],
            in_flight=rnd.randint(0, 8),
            running=rnd.choice([None, rnd.randint(0, 8)]),
            waiting=rnd.choice([None, 0, rnd.randint(0, 3)]),
        )
        for i in range(replicas)
    ]
    return candidates, where


def per_second(fn: Callable[[int], None], n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - started)


def measure(
    replicas: int,
    sites: int,
    latency: LatencyTable,
    bodies: list[dict[str, object]],
    n: int,
    rnd: random.Random,
) -> tuple[float, float]:
    """(choose_replica decisions/s, policy decisions/s) on one random fleet."""
    candidates, where = fleet(replicas, sites, rnd)
    policy = DefaultPolicy(latency)

    def plain(i: int) -> None:
        loads = [ReplicaLoad(c.replica_id, c.in_flight) for c in candidates]
        choose_replica(loads, avoid=frozenset(), turn=i)

    def routed(i: int) -> None:
        body = bodies[i % len(bodies)]
        request = RouteRequest(COUNTRIES[i % len(COUNTRIES)], affinity_key(prompt_prefix(body)))
        fresh = [
            Candidate(c.replica_id, c.site, c.in_flight, c.running, c.waiting) for c in candidates
        ]
        policy.choose(request, fresh, where)

    return per_second(plain, n), per_second(routed, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=20000)
    parser.add_argument("--rtt-table", type=Path, default=None)
    args = parser.parse_args()
    latency = parse_rtt_csv(args.rtt_table.read_text()) if args.rtt_table else BUILTIN
    rnd = random.Random(7)
    bodies = [
        {"messages": [{"role": "system", "content": "Be brief. " * 60},
                      {"role": "user", "content": f"question {i}"}]}
        for i in range(64)
    ]  # fmt: skip
    print(f"{'replicas':>8} {'sites':>5} {'choose_replica/s':>17} {'policy/s':>10} {'ratio':>6}")
    for replicas, sites in [(2, 1), (8, 2), (32, 4), (128, 8)]:
        a, b = measure(replicas, sites, latency, bodies, args.decisions, rnd)
        print(f"{replicas:>8} {sites:>5} {a:>17,.0f} {b:>10,.0f} {a / b:>6.1f}")


if __name__ == "__main__":
    main()
