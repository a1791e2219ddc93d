"""`hashgrid contracts ...`: compute contracts, reserved replicas at a price per replica-hour."""

from datetime import UTC, datetime, timedelta

import typer

from hashgrid.cli.connection import client
from hashgrid.cli.output import JsonOption, console, emit_json, fail, table
from hashgrid.contracts.api.compute_contracts import ContractCreate, ContractOut

contracts_app = typer.Typer(
    help="Compute contracts: replicas reserved for a customer at a price per replica-hour.",
    no_args_is_help=True,
)


@contracts_app.command("create")
def create(
    ctx: typer.Context,
    customer: str = typer.Argument(..., help="The customer organization."),
    model: str = typer.Argument(..., help="The deployment it calls (public or its own)."),
    replicas: int = typer.Option(..., "--replicas", help="Replicas reserved, firm."),
    price: str = typer.Option(..., "--price", help="USD per replica-hour, e.g. 2.50."),
    start: str | None = typer.Option(
        None, "--start", help="A whole hour with a zone, e.g. 2026-05-01T00:00Z (default: next)."
    ),
    end: str | None = typer.Option(None, "--end", help="A whole hour after --start."),
    hours: int | None = typer.Option(None, "--hours", min=1, help="Or the term's length."),
    region: list[str] = typer.Option(
        [], "--region", help="Where the replicas run (repeatable; default: the deployment's)."
    ),
    sla_credit: int = typer.Option(
        100, "--sla-credit", help="Percent of a missed replica-hour's price credited."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Reserve replicas of a deployment for a customer (platform admin)."""
    if (end is None) == (hours is None):
        raise fail("give exactly one of --end and --hours")
    with client(ctx) as c:
        starts_at = start or _next_hour().isoformat()
        body = ContractCreate.model_validate(
            {
                "customer": customer,
                "model": model,
                "replicas": replicas,
                "price_per_replica_hour": price,
                "starts_at": starts_at,
                "ends_at": end or _later(starts_at, hours or 0),
                "regions": region,
                "sla_credit_percent": sla_credit,
            }
        )
        contract = c.create_contract(body)
    if as_json:
        return emit_json(contract)
    console.print(
        f"contract {contract.id}: {contract.replicas} x {contract.model} for {contract.customer}, "
        f"${contract.price_per_replica_hour} per replica-hour, {_term(contract)} "
        f"({contract.status})",
        markup=False,
        highlight=False,
    )


@contracts_app.command("list")
def list_contracts(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """The contracts you may see (a customer its own), oldest first."""
    with client(ctx) as c:
        contracts = c.list_contracts()
    if as_json:
        return emit_json(contracts)
    rows = [
        (
            x.id,
            x.customer,
            x.model,
            x.replicas,
            ",".join(x.regions) or "any",
            f"${x.price_per_replica_hour}",
            _term(x),
            x.status,
        )
        for x in contracts
    ]
    columns = ["id", "customer", "model", "replicas", "regions", "per replica-hour", "term"]
    table("compute contracts", [*columns, "status"], rows)


@contracts_app.command("show")
def show(ctx: typer.Context, contract_id: str, as_json: bool = JsonOption) -> None:
    """A contract, its replicas ready now, and this month's replica-hours and credits."""
    with client(ctx) as c:
        x = c.get_contract(contract_id)
    if as_json:
        return emit_json(x)
    p = x.this_period
    console.print(
        f"contract {x.id} ({x.status}) for {x.customer}\n"
        f"  {x.replicas} x {x.model} in {', '.join(x.regions) or 'any region'}, "
        f"${x.price_per_replica_hour} per replica-hour, {_term(x)}\n"
        f"  SLA: {x.sla_credit_percent}% of each missed replica-hour credited\n"
        f"  ready now: {x.replicas_ready} of {x.replicas}\n"
        f"  {p.period}: {p.replica_hours} replica-hour(s) ${p.amount_usd}, "
        f"{p.replica_hours_missed} missed, credit ${p.credit_usd}",
        markup=False,
        highlight=False,
    )


@contracts_app.command("cancel")
def cancel(ctx: typer.Context, contract_id: str, as_json: bool = JsonOption) -> None:
    """End a contract now (platform admin): billed through this hour."""
    with client(ctx) as c:
        x = c.cancel_contract(contract_id)
    emit_json(x) if as_json else console.print(f"cancelled {x.id}")


def _next_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def _later(start: str, hours: int) -> str:
    """`hours` after `start`, or `start` itself where it is no time (the shape says why)."""
    try:
        return (datetime.fromisoformat(start) + timedelta(hours=hours)).isoformat()
    except ValueError:
        return start


def _term(x: ContractOut) -> str:
    return f"{x.starts_at:%Y-%m-%d %H:%M} to {x.ends_at:%Y-%m-%d %H:%M} UTC"
