"""The figures a run is judged by, as plain dicts (for tables, JSON and reports), and the
difference between a baseline and a what-if run."""

from hashgrid.sim.fleet import FleetResult, SiteResult

LEDGER = {
    "mining_usd": "mining_usd",
    "inference_usd": "inference_usd",
    "grid_usd": "ancillary_usd",
    "energy_usd": "energy_usd",
    "margin_usd": "margin_usd",
}


def site_figures(site: SiteResult) -> dict[str, float | str]:
    money = {k: float(getattr(site.ledger, f).sum()) for k, f in LEDGER.items()}
    return {
        "site": site.name,
        "country": site.country,
        "price": site.price_source,
        "budget_mw": site.budget_mw,
        "asic_mw": site.asic_mw,
        "gpu_nodes": site.gpu_nodes,
        **money,
        "served": site.served,
        "dropped": site.dropped,
        "rtt_p50_ms": site.rtt_p50_ms,
        "rtt_p95_ms": site.rtt_p95_ms,
        "gpu_utilisation": site.gpu_utilisation,
    }


def totals(result: FleetResult) -> dict[str, float]:
    money = {k: result.total(f) for k, f in LEDGER.items()}
    busy = sum(s.gpu_utilisation * s.gpu_nodes for s in result.sites)
    nodes = sum(s.gpu_nodes for s in result.sites)
    return {
        "hours": float(result.hours),
        **money,
        "offered": result.offered,
        "served": result.served,
        "dropped": result.dropped,
        "unrouted_firm": result.unrouted_firm,
        "unrouted_flex": result.unrouted_flex,
        "rtt_p50_ms": result.rtt_p50_ms,
        "rtt_p95_ms": result.rtt_p95_ms,
        "gpu_nodes": float(nodes),
        "gpu_utilisation": busy / nodes if nodes else 0.0,
    }


def difference(base: FleetResult, changed: FleetResult) -> dict[str, float]:
    """What-if minus baseline for every numeric total (RTT and utilisation too)."""
    before, after = totals(base), totals(changed)
    return {k: after[k] - before[k] for k in before}
