"""How long `hashgrid sim` takes on a 40-site fleet over one year of hourly data.

    python bench/sim_scale.py [--data ../shared/data] [--days 365] [--start 2024-11-01]

The packaged 40-site scenario (`src/hashgrid/sim/scenarios/fleet40.toml`: 14 sites on ERCOT
load zones, 26 on fixed tariffs on five continents, 20 client countries) run over the first
`--days` whole days of prices from `--start` (365 days from 2024-11-01: 8,760 hours, since
ERCOT's file has gaps in 2025). Prints the wall time of reading the data, of the simulation
(placement, routing, the online power plan of every site, settlement) and of both, and the goal
line of issue 6.
"""

import argparse
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

from hashgrid.sim import simulate, totals
from hashgrid.sim_data import load_fleet, read_scenario

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "src/hashgrid/sim/scenarios/fleet40.toml"
GOAL_S = 120.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2024, 11, 1))
    args = parser.parse_args()

    started = time.perf_counter()
    scenario = replace(read_scenario(SCENARIO), start=args.start, days=args.days)
    fleet = load_fleet(scenario, args.data)
    loaded = time.perf_counter()
    result = simulate(fleet)
    done = time.perf_counter()

    t = totals(result)
    print(
        f"{len(fleet.sites)} sites, {fleet.hours:,} hours from {scenario.start}, "
        f"{len(fleet.demand.clients.countries)} client countries, {t['gpu_nodes']:,.0f} GPU nodes"
    )
    print(
        f"margin ${t['margin_usd'] / 1e6:,.1f}M (mining ${t['mining_usd'] / 1e6:,.1f}M, "
        f"inference ${t['inference_usd'] / 1e6:,.1f}M, grid ${t['grid_usd'] / 1e6:,.1f}M, "
        f"energy -${t['energy_usd'] / 1e6:,.1f}M); served {t['served'] / t['offered']:.1%} of "
        f"{t['offered'] / 1e9:,.1f}G requests; RTT p50/p95 {t['rtt_p50_ms']:.0f}/"
        f"{t['rtt_p95_ms']:.0f} ms; GPU utilisation {t['gpu_utilisation']:.0%}"
    )
    total = done - started
    print(
        f"wall time: read data {loaded - started:.1f} s, simulate {done - loaded:.1f} s, "
        f"total {total:.1f} s"
    )
    one_year = len(fleet.sites) >= 40 and fleet.hours >= 8760
    verdict = "met" if one_year and total < GOAL_S else "NOT met"
    note = "" if one_year else f" (ran {fleet.hours:,} hours, not a year)"
    print(f"40-site one-year simulation under {GOAL_S:.0f} s: {verdict}{note}")


if __name__ == "__main__":
    main()
