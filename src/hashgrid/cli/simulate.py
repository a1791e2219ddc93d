"""What `hashgrid sim` does: run a scenario of the fleet simulator and, with
`--convert-asic-mw`, the same scenario changed, and report both (a table, or JSON, and a report
directory). Imported only when the command runs (see `cli/sim.py`)."""

import math
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

from hashgrid.cli.output import console, emit_json, fail, table
from hashgrid.sim import (
    Fleet,
    FleetResult,
    ScenarioError,
    convert_asics,
    difference,
    simulate,
    site_figures,
    totals,
)
from hashgrid.sim_data import DataError, load_fleet, read_scenario
from hashgrid.sim_report import write_report

DEFAULT_DATA = Path("../shared/data")


def _conversion(text: str) -> tuple[str, float]:
    site, sep, mw = text.partition("=")
    try:
        value = float(mw)
    except ValueError:
        value = math.nan
    if not sep or not site or math.isnan(value):
        raise fail(f"--convert-asic-mw wants SITE=MW, not {text!r}")
    return site, value


def _clean(value: Any) -> Any:
    """JSON has no NaN: a site that served nothing has no RTT percentile."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _figures(result: FleetResult) -> dict[str, Any]:
    return {
        "totals": {k: _clean(v) for k, v in totals(result).items()},
        "sites": [{k: _clean(v) for k, v in site_figures(s).items()} for s in result.sites],
    }


def _print(result: FleetResult, title: str) -> None:
    rows: list[list[Any]] = []
    for s in result.sites:
        f = site_figures(s)
        rows.append(
            [
                s.name,
                f"{s.asic_mw:.1f}",
                s.gpu_nodes,
                *(f"{float(f[k]) / 1e6:,.2f}" for k in ("mining_usd", "inference_usd")),
                *(f"{float(f[k]) / 1e6:,.2f}" for k in ("grid_usd", "energy_usd", "margin_usd")),
                f"{s.served / 1e6:,.1f}",
                f"{s.dropped / 1e6:,.1f}",
                "-" if math.isnan(s.rtt_p50_ms) else f"{s.rtt_p50_ms:.0f}/{s.rtt_p95_ms:.0f}",
                f"{s.gpu_utilisation:.0%}",
            ]
        )
    t = totals(result)
    rows.append(
        [
            "TOTAL",
            f"{sum(s.asic_mw for s in result.sites):.1f}",
            f"{t['gpu_nodes']:.0f}",
            *(f"{t[k] / 1e6:,.2f}" for k in ("mining_usd", "inference_usd", "grid_usd")),
            *(f"{t[k] / 1e6:,.2f}" for k in ("energy_usd", "margin_usd")),
            f"{t['served'] / 1e6:,.1f}",
            f"{t['dropped'] / 1e6:,.1f}",
            f"{t['rtt_p50_ms']:.0f}/{t['rtt_p95_ms']:.0f}",
            f"{t['gpu_utilisation']:.0%}",
        ]
    )
    columns = [
        *("site", "ASIC MW", "GPU nodes", "mining $M", "inference $M", "grid $M", "energy $M"),
        *("margin $M", "served M", "dropped M", "RTT p50/p95", "GPU use"),
    ]
    table(title, columns, rows)


def run(
    scenario: Path | None,
    days: int | None,
    convert_asic_mw: list[str],
    out: Path,
    data: Path | None,
    as_json: bool,
) -> None:
    data_dir = data or DEFAULT_DATA
    if not data_dir.is_dir():
        raise fail(
            f"data directory {data_dir} not found: pass --data DIR (the shared data sets: "
            "ERCOT prices, hashprice, RIPE Atlas RTT, the Azure trace, hardware specs)"
        )
    changes = [_conversion(c) for c in convert_asic_mw]
    try:
        if scenario is None:
            packaged = resources.files("hashgrid.sim") / "scenarios" / "fleet40.toml"
            with resources.as_file(packaged) as path:
                spec = read_scenario(path)
        else:
            spec = read_scenario(scenario)
        if days is not None:
            spec = replace(spec, days=days)
        fleet = load_fleet(spec, data_dir)
        changed: Fleet | None = None
        for site, mw in changes:
            changed = convert_asics(changed or fleet, site, mw)
    except (ScenarioError, DataError, OSError, ValueError) as e:
        raise fail(str(e)) from None

    base = simulate(fleet)
    whatif = simulate(changed) if changed is not None else None
    change = ", ".join(f"{mw:g} MW of ASICs to GPU nodes at {site}" for site, mw in changes)
    title = f"{spec.name}: {fleet.hours:,} hours"
    paths = write_report(out, title, base, whatif, change or None)
    if as_json:
        figures: dict[str, Any] = {"scenario": spec.name, "baseline": _figures(base)}
        if whatif is not None:
            figures["whatif"] = {"change": change, **_figures(whatif)}
            figures["difference"] = {k: _clean(v) for k, v in difference(base, whatif).items()}
        figures["report"] = [str(p) for p in paths]
        emit_json(figures)
        return
    _print(base, f"{title} (baseline)")
    if whatif is not None:
        d = difference(base, whatif)
        table(
            f"What if: {change}",
            ["figure", "what-if minus baseline"],
            [
                *([k, f"{d[k] / 1e6:+,.2f} $M"] for k in ("mining_usd", "inference_usd")),
                *([k, f"{d[k] / 1e6:+,.2f} $M"] for k in ("grid_usd", "energy_usd", "margin_usd")),
                ["requests served", f"{d['served'] / 1e6:+,.1f} M"],
                ["requests dropped", f"{d['dropped'] / 1e6:+,.1f} M"],
                ["GPU nodes", f"{d['gpu_nodes']:+,.0f}"],
            ],
        )
    console.print(f"report: {out / 'summary.md'} and {len(paths) - 1} chart(s) in {out}")
