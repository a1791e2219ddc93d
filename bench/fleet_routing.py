"""What routing first costs a fleet: the simulator against the fleet's joint hindsight plan.

    python bench/fleet_routing.py [--data ../shared/data] [--days 28] [--start 2025-06-01]

The packaged 40-site scenario (`src/hashgrid/sim/scenarios/fleet40.toml`) over `--days` days
from `--start`, run three ways on the same sites, serving nodes, demand and latency limit:

- online: what `hashgrid sim` runs and the platform does. The router sends each hour's requests
  to sites (firm ones within the latency limit, flex anywhere with room), and each site's
  online policy powers what it got.
- routed, then hindsight: the same routing, each site then planned in hindsight
  (`energy.plan_hindsight`). The gap to online is what not knowing prices costs.
- joint hindsight: routing and power decided together in one linear programme, everything known
  (`energy.plan_fleet_hindsight`). The upper bound. The gap to "routed, then hindsight" is what
  routing by distance and room, blind to power, costs.

Prints the margin of each, its share of the joint hindsight, the inference revenue, and the wall
time. There is no goal in issue 6 for this figure; it tells whether planning routing and power
together is worth building.
"""

import argparse
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

from hashgrid.energy import plan_hindsight
from hashgrid.sim import joint_hindsight, simulate
from hashgrid.sim_data import load_fleet, read_scenario

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "src/hashgrid/sim/scenarios/fleet40.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data")
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2025, 6, 1))
    args = parser.parse_args()

    scenario = replace(read_scenario(SCENARIO), start=args.start, days=args.days)
    fleet = load_fleet(scenario, args.data)
    print(
        f"{len(fleet.sites)} sites, {fleet.hours:,} hours from {scenario.start}, "
        f"{len(fleet.demand.clients.countries)} client countries, latency limit "
        f"{fleet.latency_limit_ms:g} ms"
    )

    runs = {}
    for name, run in (
        ("online", lambda: [s.ledger for s in simulate(fleet).sites]),
        (
            "routed, then hindsight",
            lambda: [s.ledger for s in simulate(fleet, policy=plan_hindsight).sites],
        ),
        ("joint hindsight", lambda: list(joint_hindsight(fleet))),
    ):
        started = time.perf_counter()
        ledgers = run()
        runs[name] = (
            sum(ledger.margin for ledger in ledgers),
            sum(float(ledger.inference_usd.sum()) for ledger in ledgers),
            time.perf_counter() - started,
        )

    best = runs["joint hindsight"][0]
    print(f"\n  {'run':<24}{'margin $M':>11}{'of joint':>10}{'inference $M':>14}{'wall s':>8}")
    for name, (margin, inference, wall) in runs.items():
        print(
            f"  {name:<24}{margin / 1e6:>11.3f}{margin / best:>10.2%}{inference / 1e6:>14.3f}"
            f"{wall:>8.1f}"
        )
    routed = runs["routed, then hindsight"][0]
    print(
        f"\nrouting first, blind to power, costs {(best - routed) / best:.2%} of the joint "
        f"hindsight margin; deciding power online costs {(routed - runs['online'][0]) / best:.2%}"
    )


if __name__ == "__main__":
    main()
