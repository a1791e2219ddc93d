"""`hashgrid prices ...`: the price book, and customers' discounts."""

from datetime import datetime
from decimal import Decimal

import typer

from hashgrid.cli.connection import client
from hashgrid.cli.output import JsonOption, console, emit_json, fail
from hashgrid.cli.output import table as print_table
from hashgrid.contracts.api.deployments import Tier
from hashgrid.contracts.api.prices import DiscountCreate, PriceCreate, PriceOut

prices_app = typer.Typer(
    help="The price book (USD per 1M tokens), and customers' discounts.",
    invoke_without_command=True,
)

FromOption = typer.Option(
    None,
    "--from",
    help="When it takes effect, ISO 8601 with a zone (default: now).",
    formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z", "%Y-%m-%d %H:%M:%S%z"],
)


@prices_app.callback()
def prices(
    ctx: typer.Context,
    model: str | None = typer.Option(None, help="Only this model's entries."),
    as_json: bool = JsonOption,
) -> None:
    """The price book: every model's prices per tier, the newest entry first."""
    if ctx.invoked_subcommand is not None:
        return
    with client(ctx) as c:
        found = c.list_prices(model)
    if as_json:
        return emit_json(found)
    print_table("prices (USD per 1M tokens)", COLUMNS, [_row(p) for p in found])


COLUMNS = ["model", "tier", "from", "prompt", "cached", "completion"]


def _row(p: PriceOut) -> tuple[str, ...]:
    return (
        p.model,
        p.tier,
        p.effective_from.isoformat(timespec="seconds"),
        f"${p.prompt}",
        f"${p.cached}",
        f"${p.completion}",
    )


@prices_app.command("set")
def set_prices(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="The name clients call."),
    prompt: Decimal = typer.Option(..., help="USD per 1M prompt tokens."),
    completion: Decimal = typer.Option(..., help="USD per 1M completion tokens."),
    cached: Decimal | None = typer.Option(
        None, help="USD per 1M cached prompt tokens (default: as prompt)."
    ),
    tier: Tier | None = typer.Option(None, help="firm or flex (default: both)."),
    effective_from: datetime | None = FromOption,
    as_json: bool = JsonOption,
) -> None:
    """Price a model from now (or --from) on. Records keep the prices they were charged."""
    try:
        body = PriceCreate(
            model=model,
            tier=tier,
            prompt=prompt,
            completion=completion,
            cached=cached,
            effective_from=effective_from,
        )
    except ValueError as e:
        raise fail(str(e)) from None
    with client(ctx) as c:
        rows = c.add_prices(body)
    if as_json:
        return emit_json(rows)
    for p in rows:
        console.print(
            f"{p.model} ({p.tier}) from {p.effective_from.isoformat(timespec='seconds')}: "
            f"${p.prompt} prompt, ${p.cached} cached, ${p.completion} completion per 1M tokens"
        )


@prices_app.command("discount")
def discount(
    ctx: typer.Context,
    customer: str = typer.Argument(..., help="The customer organization."),
    percent: Decimal = typer.Option(..., help="Off every unit price, e.g. 12.5."),
    model: str | None = typer.Option(None, help="Only this model (default: every model)."),
    effective_from: datetime | None = FromOption,
    as_json: bool = JsonOption,
) -> None:
    """Give a customer a discount, for requests that start from now (or --from) on."""
    try:
        body = DiscountCreate(
            customer=customer, percent=percent, model=model, effective_from=effective_from
        )
    except ValueError as e:
        raise fail(str(e)) from None
    with client(ctx) as c:
        out = c.add_discount(body)
    if as_json:
        return emit_json(out)
    console.print(f"{out.customer}: {out.percent}% off {out.model or 'every model'}")


@prices_app.command("discounts")
def discounts(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """The discounts you see: your organization's (the platform admin: every customer's)."""
    with client(ctx) as c:
        found = c.list_discounts()
    if as_json:
        return emit_json(found)
    rows = [
        (
            d.customer,
            d.model or "*",
            f"{d.percent}%",
            d.effective_from.isoformat(timespec="seconds"),
        )
        for d in found
    ]
    print_table("discounts", ["customer", "model", "off", "from"], rows)
