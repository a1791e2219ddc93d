"""What each power policy earns on a mining-plus-inference site over 2024-2025, beside hindsight.

    python bench/energy_value.py [--data ../shared/data] [--out DIR] [--zones LZ_WEST ...]
                                 [--tariff 65] [--product ecrs] [--flex-wait-h 4]
                                 [--min-on-h 2] [--ramp-mw-h MW]

The site: a 10 MW budget; Antminer S21s (200 TH/s, 3,500 W, from `hardware-power-specs`)
filling it; and 1 MW of 8 x H100 nodes that share the budget, so the miners give way while
GPUs serve. A node runs two Llama-3.3-70B replicas on 4 H100s each (ML.ENERGY, lm-arena-chat,
batch cap 128: 3,895 output tokens/s at 2,351 W per replica) plus 1.5 kW of host: 6.2 kW busy;
1.6 kW idle (host 1.0 kW and 8 x 75 W, an assumption). Inference is paid per output token:
firm $0.60 and flex $0.30 per million.

Limits on how fast the load changes (hashgrid.energy.site). A node started stays on at least
`--min-on-h` hours (2 by default): starting an 8-GPU server means its power-on self-test and
boot, then loading Llama-3.3-70B's 140 GB of weights into each replica and warming the engines
up, minutes of power that earn nothing, so an operator does not stop a node it started an hour
ago. The ASIC load changes by at most `--ramp-mw-h` MW per hour; none by default: miners change
in seconds, and no rule we know of binds a 10 MW load at hourly resolution (ERCOT's large-load
process starts at 75 MW, 20 MW beside a generator). Give one to see what a utility's ramp
clause would cost.

Demand: enough customer streams like the Azure conversation trace (one hour, Nov 2023: its
output-token rate is one stream) to fill 90% of the nodes at the daily peak, shaped by a weekday
profile (an assumption: the trace is one hour long, so it has no daily shape): a cosine from
55% at 02:00 to 100% at 14:00 Central time, weekends at 70%. 65% of it is firm; 35% is flex,
which may wait `--flex-wait-h` hours.

Sites: ERCOT load zones (`--zones`), buying at the zone's real-time price, offering ASIC load as
`--product` (ECRS by default) at the system clearing price, capped at 9 MW (the budget less the
GPUs); and one site on a fixed tariff (`--tariff` USD/MWh, no ancillary market). Hashprice: the
daily series, fees included. Days with all 24 hours of prices and a hashprice are used.

Policies (hashgrid.energy): always mine; Foreman-style threshold (sleep after an hour above the
S21 breakeven at the period's median hashprice: tuned in hindsight, which favours the baseline);
the day-ahead rule; serve-first; hashgrid online; hashgrid hindsight (the upper bound). Prints
revenue, cost and margin per site and policy, online/hindsight, and the goal lines of issue 6;
writes charts (PNG) to `--out` (a new temporary directory when not given).
"""

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from hashgrid.energy import (
    AsicGroup,
    Demand,
    Dispatch,
    GpuFleet,
    Ledger,
    Market,
    Site,
    always_mine,
    day_ahead_rule,
    plan_hindsight,
    plan_online,
    price_threshold,
    serve_first,
    settle,
)
from hashgrid.energy_data import fixed_tariff_market, read_ercot_market
from hashgrid.sim.demand import daily_shape, weekday_of
from hashgrid.sim_data import asic_spec, node_type, trace_stats

REPO = Path(__file__).resolve().parents[1]
BUDGET_MW = 10.0
GPU_MW = 1.0
FIRM_USD_PER_MTOK, FLEX_USD_PER_MTOK = 0.60, 0.30
PEAK_FILL, FIRM_SHARE = 0.90, 0.65
POLICIES = ("always mine", "threshold", "day-ahead rule", "serve-first", "online", "hindsight")
BASELINES = POLICIES[:4]

Policy = Callable[[Site, Market, Demand], Dispatch]


def s21(data: Path) -> AsicGroup:
    th_s, watts = asic_spec(data, "Antminer S21")
    return AsicGroup("Antminer S21", int(BUDGET_MW * 1e6 // watts), th_s, watts)


def demand(market: Market, nodes: int, wait: int) -> Demand:
    """Busy nodes per hour: PEAK_FILL of the nodes at the daily peak, shaped by hour of day and
    weekday (module docstring)."""
    hour = np.arange(len(market)) % 24  # hour starting, Central time
    busy = PEAK_FILL * nodes * daily_shape(hour, weekday_of(market.day))
    return Demand(FIRM_SHARE * busy, (1 - FIRM_SHARE) * busy, flex_wait=wait)


def site_for(
    name: str, data: Path, market: Market, min_on_h: float, ramp_mw_h: float | None
) -> Site:
    """The module docstring's site, with a grid offer where the market has ancillary prices."""
    node = node_type(data)
    nodes = round(GPU_MW * 1e3 / node.busy_kw)
    usd = node.tokens_s * 3600 / 1e6
    gpus = GpuFleet(
        nodes,
        node.busy_kw,
        node.idle_kw,
        usd * FIRM_USD_PER_MTOK,
        usd * FLEX_USD_PER_MTOK,
        min_on_intervals=max(market.intervals(min_on_h), 1),
    )
    ancillary = BUDGET_MW - GPU_MW if market.ancillary.any() else 0.0
    ramp = None if ramp_mw_h is None else ramp_mw_h * market.interval_h
    return Site(name, BUDGET_MW, (s21(data),), gpus, ancillary, ramp)


def policies(threshold: float) -> dict[str, Policy]:
    return {
        "always mine": always_mine,
        "threshold": lambda s, m, d: price_threshold(s, m, d, threshold),
        "day-ahead rule": day_ahead_rule,
        "serve-first": serve_first,
        "online": plan_online,
        "hindsight": plan_hindsight,
    }


def run_site(site: Site, market: Market, dem: Demand) -> dict[str, tuple[Ledger, Dispatch]]:
    breakeven = float(np.median(site.asics[0].usd_per_mwh(market.hashprice)))
    out = {}
    for name, policy in policies(breakeven).items():
        plan = policy(site, market, dem)
        out[name] = (settle(name, site, market, plan), plan)
    return out


def print_site(site: str, results: dict[str, tuple[Ledger, Dispatch]]) -> None:
    best = results["hindsight"][0].margin
    print(f"\n{site}")
    print(
        f"  {'policy':<15}{'revenue $M':>11}{'cost $M':>9}{'margin $M':>11}{'of hindsight':>14}"
        f"{'mining $M':>11}{'grid $M':>9}"
    )
    for name in POLICIES:
        ledger = results[name][0]
        print(
            f"  {name:<15}{ledger.revenue / 1e6:>11.3f}{ledger.cost / 1e6:>9.3f}"
            f"{ledger.margin / 1e6:>11.3f}{ledger.margin / best:>14.2%}"
            f"{ledger.mining_usd.sum() / 1e6:>11.3f}{ledger.ancillary_usd.sum() / 1e6:>9.3f}"
        )


def sides(ledger: Ledger, market: Market) -> np.ndarray:
    """Margin of the miners, of the grid offer and of inference, each net of its energy."""
    dt = market.interval_h
    return np.array(
        [
            np.sum(ledger.mining_usd - ledger.mining_mw * market.rt * dt),
            np.sum(ledger.ancillary_usd),
            np.sum(ledger.inference_usd - ledger.inference_mw * market.rt * dt),
        ]
    )


def charts(out: Path, runs: dict[str, tuple[Market, dict[str, tuple[Ledger, Dispatch]]]]) -> None:
    names = list(runs)
    fig, ax = plt.subplots(figsize=(10, 5))
    width = 0.8 / len(POLICIES)
    for i, policy in enumerate(POLICIES):
        margins = [runs[s][1][policy][0].margin / 1e6 for s in names]
        ax.bar(np.arange(len(names)) + i * width, margins, width, label=policy)
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names)
    ax.set_ylabel("margin 2024-2025, $M")
    ax.legend(fontsize=8)
    ax.set_title("Margin by policy and site")
    fig.tight_layout()
    fig.savefig(out / "margin_by_policy.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 5))
    for s in names:
        market, res = runs[s]
        best_baseline = max(BASELINES, key=lambda p: res[p][0].margin)
        gap = np.cumsum(res["online"][0].margin_usd - res[best_baseline][0].margin_usd) / 1e3
        ax.plot(gap, label=f"{s} (vs {best_baseline})")
    ax.set_xlabel("hour")
    ax.set_ylabel("online minus best baseline, cumulative $k")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "online_vs_best_baseline.png", dpi=120)
    plt.close(fig)

    first = names[0]
    market, res = runs[first]
    peak = int(np.argmax(market.rt))
    week = slice(max(peak - 84, 0), min(peak + 84, len(market)))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    hours = np.arange(len(market))[week]
    top.plot(hours, market.rt[week], label="real-time")
    top.plot(hours, market.dam[week], label="day-ahead")
    top.set_ylabel("$/MWh")
    top.set_yscale("symlog")
    top.legend(fontsize=8)
    for policy, style in (("online", "-"), ("hindsight", "--")):
        ledger = res[policy][0]
        bottom.plot(hours, ledger.mining_mw[week], style, label=f"{policy}: mining MW")
        bottom.plot(hours, ledger.offered_mw[week], style, label=f"{policy}: offered MW")
    bottom.plot(hours, res["online"][0].inference_mw[week], label="inference MW")
    bottom.set_xlabel("hour")
    bottom.set_ylabel("MW")
    bottom.legend(fontsize=8)
    top.set_title(f"{first}: the week around the highest price")
    fig.tight_layout()
    fig.savefig(out / f"week_{first}.png", dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--zones", nargs="+", default=["LZ_WEST", "LZ_NORTH", "LZ_SOUTH", "LZ_HOUSTON"]
    )
    parser.add_argument("--tariff", type=float, default=65.0, help="fixed tariff, USD/MWh")
    parser.add_argument("--product", default="ecrs", help="ancillary price column")
    parser.add_argument("--flex-wait-h", type=int, default=4)
    parser.add_argument("--min-on-h", type=float, default=2.0, help="GPU node minimum on-time")
    parser.add_argument("--ramp-mw-h", type=float, default=None, help="ASIC ramp limit, MW/h")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="energy_value_"))
    out.mkdir(parents=True, exist_ok=True)

    runs: dict[str, tuple[Market, dict[str, tuple[Ledger, Dispatch]]]] = {}
    markets = {z: read_ercot_market(args.data, z, args.product) for z in args.zones}
    days = np.unique(next(iter(markets.values())).day)
    markets[f"tariff ${args.tariff:g}"] = fixed_tariff_market(args.data, args.tariff, days)
    for name, market in markets.items():
        site = site_for(name, args.data, market, args.min_on_h, args.ramp_mw_h)
        dem = demand(market, site.gpus.nodes, args.flex_wait_h)
        runs[name] = (market, run_site(site, market, dem))

    node = node_type(args.data)
    print(
        f"site: {BUDGET_MW:g} MW budget, {s21(args.data).count} S21s, "
        f"{round(GPU_MW * 1e3 / node.busy_kw)} H100 nodes of {node.busy_kw:.2f} kW busy "
        f"({node.tokens_s:,.0f} output tokens/s each); {len(days)} days"
    )
    ramp = "none" if args.ramp_mw_h is None else f"{args.ramp_mw_h:g} MW/h"
    print(f"limits: GPU node minimum on-time {args.min_on_h:g} h; ASIC ramp {ramp}")
    stream = trace_stats(args.data).output_tokens_s
    streams = PEAK_FILL * round(GPU_MW * 1e3 / node.busy_kw) * node.tokens_s / stream
    print(
        f"demand at the daily peak: {streams:,.0f} streams like the Azure conversation trace "
        f"({stream:,.0f} output tokens/s each); firm ${FIRM_USD_PER_MTOK:.2f}, flex "
        f"${FLEX_USD_PER_MTOK:.2f} per million output tokens; flex waits up to "
        f"{args.flex_wait_h} h"
    )
    for name, (_, res) in runs.items():
        print_site(name, res)

    print(
        f"\n  {'site':<14}{'online/hindsight':>17}{'mining+grid':>12}{'best baseline':>15}"
        f"{'online - best $k':>17}{'= mining':>10}{'+ grid':>8}{'+ inference':>12}"
    )
    ratio_met, ties, optimal, behind = True, [], [], []
    for name, (market, res) in runs.items():
        online, hindsight = res["online"][0], res["hindsight"][0]
        best = max(BASELINES, key=lambda p: res[p][0].margin)
        ratio = online.margin / hindsight.margin
        mine = sides(online, market)
        side = mine[:2].sum() / sides(hindsight, market)[:2].sum()
        split = (mine - sides(res[best][0], market)) / 1e3
        lead = online.margin - res[best][0].margin
        ratio_met &= ratio >= 0.99
        if hindsight.margin - res[best][0].margin < 1.0:
            optimal.append(f"{name} ({best})")  # nothing can be above the upper bound
        elif abs(lead) < 1.0:
            ties.append(name)  # within a dollar: the same decisions
        elif lead < 0:
            behind.append(name)
        print(
            f"  {name:<14}{ratio:>17.2%}{side:>12.2%}{best:>15}{lead / 1e3:>17,.1f}"
            f"{split[0]:>10,.1f}{split[1]:>8,.1f}{split[2]:>12,.1f}"
        )
    print(f"\nhashgrid online >= 99% of hindsight margin: {'met' if ratio_met else 'NOT met'}")
    verdict = "met" if not ties and not behind else "NOT met"
    why = [f"behind on {', '.join(behind)}"] if behind else []
    why += [f"tied with the best baseline on {', '.join(ties)}"] if ties else []
    print(
        f"above the best baseline on every site where any policy can be: {verdict}"
        + (f" ({'; '.join(why)})" if why else "")
    )
    if optimal:
        print(
            f"  a baseline earns the hindsight margin itself, so no policy can be above it, on: "
            f"{', '.join(optimal)}"
        )
    charts(out, runs)
    print(f"charts: {out}")


if __name__ == "__main__":
    main()
