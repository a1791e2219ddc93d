"""Deployments get autoscaling bounds and targets; existing ones keep their fixed size.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("min_replicas", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_replicas", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("target_load", sa.Float(), nullable=False, server_default="8"))
        batch.add_column(sa.Column("ttft_target_ms", sa.Float(), nullable=True))
        batch.add_column(sa.Column("idle_s", sa.Float(), nullable=False, server_default="300"))
    op.execute("UPDATE deployments SET min_replicas = replicas, max_replicas = replicas")
    with op.batch_alter_table("deployments") as batch:
        batch.alter_column("min_replicas", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("max_replicas", existing_type=sa.Integer(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        for column in ("idle_s", "ttft_target_ms", "target_load", "max_replicas", "min_replicas"):
            batch.drop_column(column)
