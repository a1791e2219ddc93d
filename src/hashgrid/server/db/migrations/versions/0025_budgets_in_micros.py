"""Budgets in integer micro-dollars: `monthly_budget_usd` (a float) becomes
`monthly_budget_micros` (BigInteger) on keys and organizations. Each stored budget is converted
exactly: the float's shortest decimal form rounded half-even to a micro-dollar.

The old column is dropped in place (SQLite 3.35+ drops a plain column natively), not by
copying the table as batch mode does: a copy drops the table the keys' foreign key points to,
which SQLite refuses while a key exists.

Revision ID: 0025
Revises: 0024
"""

from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIMITED = ("api_keys", "organizations")


def upgrade() -> None:
    for name in LIMITED:
        with op.batch_alter_table(name) as batch:
            batch.add_column(sa.Column("monthly_budget_micros", sa.BigInteger(), nullable=True))
        _convert(name, "monthly_budget_usd", "monthly_budget_micros", _micros)
        op.drop_column(name, "monthly_budget_usd")


def downgrade() -> None:
    for name in reversed(LIMITED):
        with op.batch_alter_table(name) as batch:
            batch.add_column(sa.Column("monthly_budget_usd", sa.Float(), nullable=True))
        _convert(name, "monthly_budget_micros", "monthly_budget_usd", _usd)
        op.drop_column(name, "monthly_budget_micros")


def _micros(usd: float) -> int:
    return int((Decimal(repr(usd)) * 10**6).to_integral_value(ROUND_HALF_EVEN))


def _usd(micros: int) -> float:
    return micros / 10**6


def _convert(name: str, source: str, target: str, convert: Callable[[Any], int | float]) -> None:
    """Fill `target` from `source` row by row (budgets are few), in Python: exact on both
    backends, whatever their rounding of floats."""
    table = sa.table(name, sa.column("id", sa.String), sa.column(source), sa.column(target))
    bind = op.get_bind()
    rows = bind.execute(sa.select(table.c.id, table.c[source]).where(table.c[source].is_not(None)))
    for row_id, value in rows.all():
        bind.execute(table.update().where(table.c.id == row_id).values({target: convert(value)}))
