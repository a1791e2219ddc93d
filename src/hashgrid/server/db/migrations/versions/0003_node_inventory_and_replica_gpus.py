"""Nodes record the models they hold and their verification at join; replicas their GPUs.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch_op:
        batch_op.add_column(sa.Column("holdings", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("verification", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("capacity_class", sa.String(32), nullable=True))
    with op.batch_alter_table("replicas") as batch_op:
        batch_op.add_column(sa.Column("gpus", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("replicas") as batch_op:
        batch_op.drop_column("gpus")
    with op.batch_alter_table("nodes") as batch_op:
        batch_op.drop_column("capacity_class")
        batch_op.drop_column("verification")
        batch_op.drop_column("holdings")
