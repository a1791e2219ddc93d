"""`hashgrid keys ...` and `hashgrid usage`."""

import typer

from hashgrid.cli.connection import client
from hashgrid.cli.output import JsonOption, console, emit_json, table

keys_app = typer.Typer(help="Customer API keys.", no_args_is_help=True)


@keys_app.command("create")
def create_key(
    ctx: typer.Context,
    customer: str = typer.Option("default", help="The customer organization."),
    name: str = typer.Option("default", help="A label to tell keys apart."),
    as_json: bool = JsonOption,
) -> None:
    """Create an API key. It is shown once."""
    with client(ctx) as c:
        key = c.create_key(customer, name)
    if as_json:
        return emit_json(key)
    console.print(f"API key for {customer} (shown once; store it now):")
    typer.echo(key.key)


@keys_app.command("list")
def list_keys(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List API keys (never their secrets)."""
    with client(ctx) as c:
        keys = c.list_keys()
    if as_json:
        return emit_json(keys)
    rows = [(k.id, k.name, k.prefix + "...", k.customer_id, k.revoked_at or "") for k in keys]
    table("keys", ["id", "name", "key", "customer", "revoked"], rows)


@keys_app.command("revoke")
def revoke_key(ctx: typer.Context, key_id: str) -> None:
    """Revoke an API key."""
    with client(ctx) as c:
        c.revoke_key(key_id)
    console.print(f"revoked {key_id}")


def usage(
    ctx: typer.Context,
    limit: int = typer.Option(20, min=1, help="How many records."),
    as_json: bool = JsonOption,
) -> None:
    """The newest usage records."""
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
            r.request_id,
        )
        for r in records
    ]
    table("usage", ["time", "model", "status", "prompt", "completion", "ms", "request"], rows)
