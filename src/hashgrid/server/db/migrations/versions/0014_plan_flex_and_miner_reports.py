"""Planned intervals say whether they pause flex work; site agents' miner reports are stored.

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("power_plans") as batch:
        batch.add_column(
            sa.Column("flex_paused", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "miner_reports",
        sa.Column("site_id", sa.String(32), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("by_action", sa.JSON(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("first_failure", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_miner_reports_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_miner_reports")),
    )


def downgrade() -> None:
    op.drop_table("miner_reports")
    with op.batch_alter_table("power_plans") as batch:
        batch.drop_column("flex_paused")
