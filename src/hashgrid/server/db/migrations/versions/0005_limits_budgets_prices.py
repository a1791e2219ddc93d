"""Keys and customers have limits and budgets; models have prices; usage records their cost.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIMITED = ("api_keys", "organizations")


def upgrade() -> None:
    for table in LIMITED:
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("rpm_limit", sa.Integer(), nullable=True))
            batch_op.add_column(sa.Column("tpm_limit", sa.Integer(), nullable=True))
            batch_op.add_column(sa.Column("monthly_budget_usd", sa.Float(), nullable=True))
    with op.batch_alter_table("catalog_models") as batch_op:
        for column in ("price_per_mtok_prompt", "price_per_mtok_completion"):
            batch_op.add_column(
                sa.Column(column, sa.Float(), nullable=False, server_default=sa.text("0"))
            )
    with op.batch_alter_table("usage_records") as batch_op:
        batch_op.add_column(
            sa.Column("cost_usd", sa.Float(), nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch_op:
        batch_op.drop_column("cost_usd")
    with op.batch_alter_table("catalog_models") as batch_op:
        batch_op.drop_column("price_per_mtok_completion")
        batch_op.drop_column("price_per_mtok_prompt")
    for table in reversed(LIMITED):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("monthly_budget_usd")
            batch_op.drop_column("tpm_limit")
            batch_op.drop_column("rpm_limit")
