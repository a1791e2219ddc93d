"""Printing results: a rich table for people, JSON with `--json` for scripts."""

import json
from collections.abc import Sequence
from typing import Any

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hashgrid.client import ApiError

console = Console()
errors = Console(stderr=True)

JsonOption = typer.Option(False, "--json", help="Print JSON for scripts.")


def emit_json(data: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> None:
    if isinstance(data, BaseModel):
        value: Any = data.model_dump(mode="json")
    elif isinstance(data, dict):
        value = data
    else:
        value = [d.model_dump(mode="json") for d in data]
    typer.echo(json.dumps(value, indent=2))


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c)
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    console.print(t)


def fail(message: str) -> typer.Exit:
    """Print `error: message` on one line (never wrapped, its text never read as markup)."""
    errors.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(1)


def api_failure(e: ApiError, hint: str = "") -> typer.Exit:
    return fail(f"{e.detail} ({e.status} {e.title})" + (f"; {hint}" if hint else ""))


def invalid(e: ValidationError) -> typer.Exit:
    """A request the command would send breaks its shape: the first error, as the server words
    a 422 (`field: why`), before anything is sent."""
    first = e.errors()[0]
    return fail(f"{'.'.join(map(str, first['loc'])) or e.title}: {first['msg']}")


def gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"
