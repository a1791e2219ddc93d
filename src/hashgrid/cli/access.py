"""`hashgrid keys ...` and `hashgrid usage`."""

from decimal import Decimal

import typer
from pydantic import TypeAdapter, ValidationError

from hashgrid.cli.connection import client
from hashgrid.cli.output import JsonOption, console, emit_json, table
from hashgrid.contracts.api.common import BudgetUsd, Limits
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.usage import Grouping, UsageSummaryQuery

keys_app = typer.Typer(help="Customer API keys.", no_args_is_help=True)


RpmOption = typer.Option(None, "--rpm", min=1, help="Requests per minute (default: no limit).")
TpmOption = typer.Option(None, "--tpm", min=1, help="Tokens per minute (default: no limit).")


def budget_usd(text: str) -> Decimal:
    """A budget as the API takes it: USD with at most 6 decimals."""
    try:
        return TypeAdapter(BudgetUsd).validate_python(text)
    except ValidationError as e:
        raise typer.BadParameter(e.errors()[0]["msg"]) from None


BudgetOption = typer.Option(
    None,
    "--budget",
    parser=budget_usd,
    metavar="USD",
    help="USD per calendar month, UTC, e.g. 50 or 12.5 (default: no budget).",
)


@keys_app.command("create")
def create_key(
    ctx: typer.Context,
    customer_name: str | None = typer.Argument(
        None, metavar="[CUSTOMER]", help="The customer organization (or --customer)."
    ),
    customer: str | None = typer.Option(
        None, help="The customer organization (default: yours; the platform admin names one)."
    ),
    name: str = typer.Option("default", help="A label to tell keys apart."),
    rpm: int | None = RpmOption,
    tpm: int | None = TpmOption,
    budget: Decimal | None = BudgetOption,
    as_json: bool = JsonOption,
) -> None:
    """Create an API key, with limits if given. It is shown once."""
    customer = customer_name or customer
    with client(ctx) as c:
        limits = Limits(rpm=rpm, tpm=tpm, monthly_budget_usd=budget)
        key = c.create_key(KeyCreate(customer=customer, name=name, limits=limits))
    if as_json:
        return emit_json(key)
    console.print(
        f"API key for {customer or 'your organization'}, named {key.name} (shown once; store "
        "it now):",
        markup=False,
        highlight=False,
    )
    typer.echo(key.key)


@keys_app.command("limits")
def key_limits(
    ctx: typer.Context,
    key_id: str,
    rpm: int | None = RpmOption,
    tpm: int | None = TpmOption,
    budget: Decimal | None = BudgetOption,
    as_json: bool = JsonOption,
) -> None:
    """Replace a key's limits; a limit not given is lifted."""
    with client(ctx) as c:
        limits = Limits(rpm=rpm, tpm=tpm, monthly_budget_usd=budget)
        key = c.set_key_limits(key_id, limits)
    if as_json:
        return emit_json(key)
    console.print(f"limits of {key.id}: {describe(key.limits)}")


@keys_app.command("list")
def list_keys(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List API keys (never their secrets), with limits and this month's spend."""
    with client(ctx) as c:
        keys = c.list_keys()
    if as_json:
        return emit_json(keys)
    rows = [
        (
            k.id,
            k.name,
            k.prefix + "...",
            k.customer_id,
            describe(k.limits),
            f"${k.month_spend_usd}",
            k.revoked_at or "",
        )
        for k in keys
    ]
    table("keys", ["id", "name", "key", "customer", "limits", "month", "revoked"], rows)


def describe(limits: Limits) -> str:
    """`60 rpm, 100000 tpm, $50.00/month`, or `none`."""
    parts = []
    if limits.rpm is not None:
        parts.append(f"{limits.rpm} rpm")
    if limits.tpm is not None:
        parts.append(f"{limits.tpm} tpm")
    if limits.monthly_budget_usd is not None:
        parts.append(f"${limits.monthly_budget_usd:f}/month")
    return ", ".join(parts) or "none"


@keys_app.command("revoke")
def revoke_key(ctx: typer.Context, key_id: str) -> None:
    """Revoke an API key."""
    with client(ctx) as c:
        c.revoke_key(key_id)
    console.print(f"revoked {key_id}")


def usage(
    ctx: typer.Context,
    limit: int = typer.Option(20, min=1, help="How many records."),
    by: list[Grouping] = typer.Option(
        [], "--by", help="Sum this month's usage by day, model, key or region (repeatable)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """The newest usage records the caller sees, or with --by their sums this month."""
    if by:
        return usage_summary(ctx, by, as_json)
    with client(ctx) as c:
        records = c.usage(limit)
    if as_json:
        return emit_json(records)
    rows = [
        (
            r.started_at.strftime("%H:%M:%S"),
            r.model,
            r.status_code,
            r.prompt_tokens,
            r.completion_tokens,
            f"{r.duration_ms:.0f}",
            r.client_request_id or r.request_id,  # the id the client knows its request by
        )
        for r in records
    ]
    table("usage", ["time", "model", "status", "prompt", "completion", "ms", "request"], rows)


def usage_summary(ctx: typer.Context, by: list[Grouping], as_json: bool) -> None:
    with client(ctx) as c:
        groups = c.usage_summary(UsageSummaryQuery(group_by=by))
    if as_json:
        return emit_json(groups)
    fields = {Grouping.DAY: "day", Grouping.MODEL: "model", Grouping.KEY: "key_id"}
    columns = [g.value for g in dict.fromkeys(by)]
    rows = [
        (
            *(str(getattr(g, fields.get(b, b.value)) or "") for b in dict.fromkeys(by)),
            g.requests,
            g.prompt_tokens,
            g.completion_tokens,
            f"${g.cost_usd:.4f}",
        )
        for g in groups
    ]
    table("usage this month", [*columns, "requests", "prompt", "completion", "cost"], rows)
