"""Catalog models say what they serve (generation or embeddings) and their weights' SHA-256.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("catalog_models") as batch_op:
        batch_op.add_column(
            sa.Column("task", sa.String(16), nullable=False, server_default="generate")
        )
        batch_op.add_column(sa.Column("sha256", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("catalog_models") as batch_op:
        batch_op.drop_column("sha256")
        batch_op.drop_column("task")
