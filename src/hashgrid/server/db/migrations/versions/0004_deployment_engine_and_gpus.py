"""Deployments choose their engine, tensor parallel size and GPU type; catalog models may give
the architecture figures that size their KV cache.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch_op:
        batch_op.add_column(sa.Column("engine", sa.String(32), nullable=True))
        batch_op.add_column(
            sa.Column("tensor_parallel_size", sa.Integer(), nullable=False, server_default="1")
        )
        batch_op.add_column(sa.Column("gpu_type", sa.String(100), nullable=True))
    with op.batch_alter_table("catalog_models") as batch_op:
        batch_op.add_column(sa.Column("architecture", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("catalog_models") as batch_op:
        batch_op.drop_column("architecture")
    with op.batch_alter_table("deployments") as batch_op:
        batch_op.drop_column("gpu_type")
        batch_op.drop_column("tensor_parallel_size")
        batch_op.drop_column("engine")
