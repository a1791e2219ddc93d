"""`hashgrid power ...`: a site's power model, plan, curtailments and history."""

from pathlib import Path

import typer

from hashgrid.cli.connection import client
from hashgrid.cli.output import JsonOption, console, emit_json, fail, table
from hashgrid.contracts.api.power import CurtailmentCreate, CurtailmentOut, IntervalOut, PowerModel
from hashgrid.contracts.states import CurtailmentStatus

power_app = typer.Typer(
    help="Site power: what each MW does (mining, inference, the grid), curtailments.",
    no_args_is_help=True,
)


@power_app.command("set")
def set_power(ctx: typer.Context, site: str, path: Path, as_json: bool = JsonOption) -> None:
    """Give SITE its power model from a JSON file: ASIC groups, GPU economics, price and
    hashprice sources, and the grid offer with its ancillary prices, if any (see
    `PUT /api/v1/sites/{site}/power` in the API docs)."""
    try:
        text = path.read_text()
    except OSError as e:
        raise fail(f"cannot read {path}: {e}") from None
    with client(ctx) as c:
        power = c.set_power(site, PowerModel.model_validate_json(text))
    if as_json:
        return emit_json(power)
    console.print(f"power model of [bold]{power.site}[/bold] set; state {power.power_state}")


@power_app.command("show")
def show(ctx: typer.Context, site: str, as_json: bool = JsonOption) -> None:
    """SITE's power state, curtailment in force and ASIC groups."""
    with client(ctx) as c:
        power = c.get_power(site)
    if as_json:
        return emit_json(power)
    console.print(
        f"[bold]{power.site}[/bold]  budget {power.budget_mw:g} MW  state {power.power_state}",
        highlight=False,
    )
    if power.curtailment is not None:
        _events([power.curtailment], f"curtailment {power.curtailment.status.replace('_', ' ')}")
    if power.model is not None:
        rows = [
            (g.model, g.count, g.th_s, g.watts, g.control, len(g.addresses))
            for g in power.model.asics
        ]
        table("ASIC groups", ["model", "count", "TH/s", "W", "control", "addresses"], rows)
        offer = power.model.ancillary
        if offer is not None:
            price = offer.price
            paid = f"ERCOT {price.product}" if price.kind == "ercot" else f"${price.usd_per_mw_h:g}"
            console.print(f"grid offer: up to {offer.mw:g} MW of ASICs at {paid} per MW-h")
        if power.gpu_busy_kw is not None:
            console.print(
                f"GPU node busy: {power.gpu_busy_kw:.3g} kW ({power.gpu_busy_from})",
                highlight=False,
            )
    if power.miners is not None:
        m = power.miners
        console.print(f"miners at {m.reported_at:%H:%M:%S}: {m.by_action}, {m.failed} failed")
        if m.nodes:
            console.print(f"GPU nodes' BMCs, last result: {m.nodes}")


@power_app.command("plan")
def plan(
    ctx: typer.Context,
    site: str,
    hours: int = typer.Option(24, min=1, help="Hours to plan."),
    start: str | None = typer.Option(None, help="From, ISO 8601 (default: now)."),
    chart: Path | None = typer.Option(None, help="Also write a PNG chart here."),
    as_json: bool = JsonOption,
) -> None:
    """SITE's online plan per interval (an hour, or 15 minutes on a 15-minute price series): MW
    to mining, inference and the grid, and their revenue."""
    with client(ctx) as c:
        planned = c.power_plan(site, hours, start)
    if chart is not None:
        _chart(planned.site, planned.intervals, chart)
    if as_json:
        return emit_json(planned)
    _intervals(f"plan of {planned.site}", planned.intervals)
    if chart is not None:
        console.print(f"chart written to {chart}")


@power_app.command("history")
def history(
    ctx: typer.Context,
    site: str,
    limit: int = typer.Option(20, min=1, help="Rows of each kind."),
    as_json: bool = JsonOption,
) -> None:
    """SITE's curtailment events (what was shed, what it cost) and stored plans, newest first."""
    with client(ctx) as c:
        past = c.power_history(site, limit)
    if as_json:
        return emit_json(past)
    _events(past.curtailments, f"curtailments of {past.site}")
    _intervals(f"plans of {past.site}", past.plans, applied=True)


@power_app.command("curtail")
def curtail(
    ctx: typer.Context,
    site: str,
    to_mw: float = typer.Option(..., "--to-mw", help="Target load in MW; 0 stops everything."),
    by: str | None = typer.Option(
        None,
        help="Deadline, ISO 8601 with a time zone (default: now): shedding begins just in time.",
    ),
    reason: str = typer.Option("", help="Why, for the event log."),
    grid: bool = typer.Option(False, "--grid", help="The grid called it (default: operator)."),
    as_json: bool = JsonOption,
) -> None:
    """Bring SITE down to --to-mw by --by (default now): ASICs first, then flex replicas move,
    then firm ones. A future deadline is scheduled; `show` and `restore` see it."""
    with client(ctx) as c:
        source = "grid" if grid else "operator"
        body = CurtailmentCreate(target_mw=to_mw, by=by, reason=reason, source=source)
        event = c.curtail(site, body)
    if as_json:
        return emit_json(event)
    if event.status is CurtailmentStatus.SCHEDULED:
        begins = f"{event.starts_at:%Y-%m-%d %H:%M:%S} UTC"
        _events([event], f"{site} curtailment scheduled: shedding begins {begins}")
    else:
        _events([event], f"{site} curtailed")


@power_app.command("restore")
def restore(ctx: typer.Context, site: str, as_json: bool = JsonOption) -> None:
    """End SITE's curtailment, or cancel a scheduled one: active again, miners follow the plan."""
    with client(ctx) as c:
        event = c.restore(site)
    if as_json:
        return emit_json(event)
    done = (
        "restored" if event.status is CurtailmentStatus.ENDED else "scheduled curtailment cancelled"
    )
    _events([event], f"{site} {done}")


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _events(events: list[CurtailmentOut], title: str) -> None:
    rows = [
        (
            f"{e.started_at or e.starts_at:%Y-%m-%d %H:%M:%S}",
            "-" if e.ended_at is None else f"{e.ended_at:%H:%M:%S}",
            e.status.replace("_", " "),
            e.source,
            f"{e.target_mw:g}",
            f"{e.load_mw:.3f}",
            f"{e.asic_shed_mw:.3f}",
            f"{e.flex_shed_mw:.3f}",
            f"{e.firm_shed_mw:.3f}",
            e.power_state,
            _usd(e.energy_saved_usd),
            _usd(e.mining_foregone_usd),
            e.reason,
        )
        for e in events
    ]
    columns = ["starts (UTC)", "ended", "status", "source", "target MW", "load MW", "ASIC shed"]
    columns += ["flex shed", "firm shed", "state", "energy saved $", "mining lost $", "reason"]
    table(title, columns, rows)


def _intervals(title: str, intervals: list[IntervalOut], applied: bool = False) -> None:
    rows = [
        (
            f"{i.start:%Y-%m-%d %H:%M}",
            f"{i.price_usd_per_mwh:.2f}",
            f"{i.mining_mw:.3f}",
            f"{i.inference_mw:.3f}",
            f"{i.offered_mw:.3f}",
            "paused" if i.flex_paused else "runs",
            _usd(i.mining_usd),
            _usd(i.inference_usd),
            _usd(i.ancillary_usd),
            _usd(i.energy_usd),
            *(["yes" if i.applied else "no"] if applied else []),
        )
        for i in intervals
    ]
    columns = ["from (UTC)", "$/MWh", "mining MW", "inference MW", "grid MW", "flex", "mining $"]
    columns += ["inference $", "grid $", "energy $", *(["applied"] if applied else [])]
    table(title, columns, rows)


def _chart(site: str, intervals: list[IntervalOut], path: Path) -> None:
    """Stacked MW per interval (mining, inference, offered to the grid) over the price."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    import matplotlib.pyplot as plt

    at = list(range(len(intervals)))
    width = 0.9
    fig, ax = plt.subplots(figsize=(10, 4.5))
    mining = [i.mining_mw for i in intervals]
    inference = [i.inference_mw for i in intervals]
    ax.bar(at, mining, width, label="mining")
    ax.bar(at, inference, width, bottom=mining, label="inference")
    ax.bar(
        at,
        [i.offered_mw for i in intervals],
        width,
        bottom=[m + n for m, n in zip(mining, inference, strict=True)],
        label="offered to the grid",
        alpha=0.5,
    )
    ax.set_ylabel("MW")
    step = max(1, len(intervals) // 12)
    ax.set_xticks(at[::step], [f"{i.start:%m-%d %H:%M}" for i in intervals[::step]])
    price = ax.twinx()
    price.plot(at, [i.price_usd_per_mwh for i in intervals], color="black", label="price")
    price.set_ylabel("USD/MWh")
    ax.legend(loc="upper left")
    ax.set_title(f"power plan of {site}")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
