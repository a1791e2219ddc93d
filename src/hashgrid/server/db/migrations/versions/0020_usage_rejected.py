"""Usage records a gateway sent that are not valid are set aside in `usage_rejected` instead of
failing their batch; `usage_records.usage_clamped` marks records whose node reported token
counts the gateway did not trust. Records stored before the bounds are brought within them, so
that they read back through the bounded API shape: negative or 32-bit-overflowing counts (and a
negative cost) are clamped and marked `usage_clamped`; on SQLite, which checks no width, NUL is
removed from model names and client request ids and both are cut to their columns.

Revision ID: 0020
Revises: 0019
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_rejected",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(100), nullable=True),
        sa.Column("gateway", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_usage_rejected"),
    )
    op.create_index("ix_usage_rejected_received_at", "usage_rejected", ["received_at"])
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(
            sa.Column("usage_clamped", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    _bound_stored_usage()


def _bound_stored_usage() -> None:
    u = sa.table(
        "usage_records",
        sa.column("request_id", sa.String),
        sa.column("prompt_tokens", sa.Integer),
        sa.column("completion_tokens", sa.Integer),
        sa.column("cost_usd", sa.Float),
        sa.column("usage_clamped", sa.Boolean),
        sa.column("model", sa.String),
        sa.column("client_request_id", sa.String),
    )
    int32_max = 2**31 - 1

    def clamped(column: sa.ColumnClause[int]) -> sa.Case[int]:
        return sa.case((column < 0, 0), (column > int32_max, int32_max), else_=column)

    op.execute(
        u.update()
        .where(
            sa.or_(
                *(c < 0 for c in (u.c.prompt_tokens, u.c.completion_tokens)),
                *(c > int32_max for c in (u.c.prompt_tokens, u.c.completion_tokens)),
            )
        )
        .values(
            prompt_tokens=clamped(u.c.prompt_tokens),
            completion_tokens=clamped(u.c.completion_tokens),
            cost_usd=sa.case((u.c.cost_usd < 0, 0.0), else_=u.c.cost_usd),
            usage_clamped=True,
        )
    )
    if op.get_bind().dialect.name != "sqlite":
        return  # PostgreSQL refused long strings and NUL when they were sent
    # SQLite's string functions stop at a NUL: the text is read as bytes and mended here.
    for column in (u.c.model, u.c.client_request_id):
        raw = sa.cast(column, sa.LargeBinary)
        mendable = sa.or_(sa.func.length(raw) > 200, sa.func.instr(raw, b"\x00") > 0)
        found = op.get_bind().execute(sa.select(u.c.request_id, raw).where(mendable))
        for request_id, value in found.all():
            text = value.decode(errors="replace")
            op.execute(
                u.update()
                .where(u.c.request_id == request_id)
                .values({column.name: text.replace("\x00", "")[:200]})
            )
