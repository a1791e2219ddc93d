"""Writing a simulation's report: a markdown summary and matplotlib charts (Agg, no display)
of a baseline run and, when asked, a what-if run beside it."""

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from hashgrid.sim import FleetResult, difference, site_figures, totals

MONEY = (
    ("mining_usd", "mining"),
    ("inference_usd", "inference"),
    ("grid_usd", "grid"),
    ("energy_usd", "energy cost"),
    ("margin_usd", "margin"),
)


def _fmt(value: float, kind: str) -> str:
    if math.isnan(value):
        return "-"
    if kind == "usd":
        return f"{value / 1e6:,.2f}"
    if kind == "req":
        return f"{value / 1e6:,.1f}"
    if kind == "pct":
        return f"{value:.0%}"
    return f"{value:,.0f}"


def summary_markdown(
    title: str, base: FleetResult, whatif: FleetResult | None, change: str | None
) -> str:
    """The report's text: totals, one row per site and, with a what-if, its differences."""
    t = totals(base)
    lines = [
        f"# {title}",
        "",
        f"{len(base.sites)} sites, {base.hours:,} hours. Money in USD millions, requests in "
        "millions.",
        "",
        "| total | value |",
        "|---|---:|",
        *(f"| {label} | {_fmt(t[key], 'usd')} |" for key, label in MONEY),
        f"| requests offered | {_fmt(t['offered'], 'req')} |",
        f"| requests served | {_fmt(t['served'], 'req')} |",
        f"| requests dropped | {_fmt(t['dropped'], 'req')} |",
        f"| of which firm with no site within the latency limit | "
        f"{_fmt(t['unrouted_firm'], 'req')} |",
        f"| RTT p50 / p95 of served requests, ms | {_fmt(t['rtt_p50_ms'], 'ms')} / "
        f"{_fmt(t['rtt_p95_ms'], 'ms')} |",
        f"| GPU utilisation | {_fmt(t['gpu_utilisation'], 'pct')} |",
        "",
        "| site | country | price | ASIC MW | GPU nodes | mining | inference | grid | energy "
        "| margin | served | dropped | RTT p50 | RTT p95 | GPU use |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in base.sites:
        f = site_figures(s)
        lines.append(
            f"| {f['site']} | {f['country']} | {f['price']} | {s.asic_mw:.1f} | {s.gpu_nodes} | "
            + " | ".join(_fmt(float(f[k]), "usd") for k, _ in MONEY)
            + f" | {_fmt(s.served, 'req')} | {_fmt(s.dropped, 'req')} | "
            f"{_fmt(s.rtt_p50_ms, 'ms')} | {_fmt(s.rtt_p95_ms, 'ms')} | "
            f"{_fmt(s.gpu_utilisation, 'pct')} |"
        )
    if whatif is not None:
        d = difference(base, whatif)
        lines += [
            "",
            f"## What if: {change}",
            "",
            "| total | baseline | what-if | difference |",
            "|---|---:|---:|---:|",
        ]
        w = totals(whatif)
        for key, label in MONEY:
            lines.append(
                f"| {label} | {_fmt(t[key], 'usd')} | {_fmt(w[key], 'usd')} | "
                f"{_fmt(d[key], 'usd')} |"
            )
        for key, label in (("served", "requests served"), ("dropped", "requests dropped")):
            lines.append(
                f"| {label} | {_fmt(t[key], 'req')} | {_fmt(w[key], 'req')} | "
                f"{_fmt(d[key], 'req')} |"
            )
        nodes = (t["gpu_nodes"], w["gpu_nodes"], d["gpu_nodes"])
        lines.append(f"| GPU nodes | {nodes[0]:,.0f} | {nodes[1]:,.0f} | {nodes[2]:+,.0f} |")
    return "\n".join(lines) + "\n"


def _margin_chart(path: Path, base: FleetResult, whatif: FleetResult | None) -> None:
    names = [s.name for s in base.sites]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(8, len(names) * 0.3), 5))
    width = 0.4 if whatif else 0.8
    ax.bar(x, [s.ledger.margin / 1e6 for s in base.sites], width, label="baseline")
    if whatif is not None:
        ax.bar(x + width, [s.ledger.margin / 1e6 for s in whatif.sites], width, label="what-if")
        ax.legend()
    ax.set_xticks(x + (width / 2 if whatif else 0), names, rotation=90, fontsize=7)
    ax.set_ylabel("margin, $M")
    ax.set_title("Margin per site")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _daily(values: np.ndarray) -> np.ndarray:
    days = len(values) // 24
    return np.asarray(values[: days * 24].reshape(days, 24).mean(axis=1))


def _mix_chart(path: Path, result: FleetResult) -> None:
    fig, ax = plt.subplots(figsize=(10, 4.5))
    mining, inference = _daily(result.mining_mw), _daily(result.inference_mw)
    days = np.arange(len(mining))
    ax.stackplot(days, mining, inference, labels=["mining", "inference"])
    ax.plot(days, _daily(result.offered_mw), "k--", label="offered to the grid (part of mining)")
    ax.set_xlabel("day")
    ax.set_ylabel("MW, daily mean over the fleet")
    ax.set_title("MW mix over time (baseline)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _whatif_chart(path: Path, base: FleetResult, whatif: FleetResult) -> None:
    labels = [label for _, label in MONEY]
    before = [totals(base)[k] / 1e6 for k, _ in MONEY]
    after = [totals(whatif)[k] / 1e6 for k, _ in MONEY]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.bar(x - 0.2, before, 0.4, label="baseline")
    ax.bar(x + 0.2, after, 0.4, label="what-if")
    ax.set_xticks(x, labels)
    ax.set_ylabel("$M over the period")
    ax.set_title("Baseline vs what-if, fleet totals")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    out: Path, title: str, base: FleetResult, whatif: FleetResult | None, change: str | None
) -> list[Path]:
    """Write summary.md and the charts into `out` (created if needed); the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    summary = out / "summary.md"
    summary.write_text(summary_markdown(title, base, whatif, change))
    paths = [summary, out / "margin_per_site.png", out / "mw_mix.png"]
    _margin_chart(paths[1], base, whatif)
    _mix_chart(paths[2], base)
    if whatif is not None:
        paths.append(out / "baseline_vs_whatif.png")
        _whatif_chart(paths[-1], base, whatif)
    return paths
