"""Deployments get a generation; each replica keeps the generation, model and engine it was
placed with, so a change of the deployment rolls over its replicas instead of changing them
underneath their engines.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("generation", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("replicas") as batch:
        batch.add_column(sa.Column("generation", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("model_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("engine", sa.String(32), nullable=True))
    # Replicas placed before: what their deployment ran then, which is what it runs now.
    op.execute(
        """
        UPDATE replicas SET
          model_id = (SELECT d.model_id FROM deployments d WHERE d.id = replicas.deployment_id),
          engine = (
            SELECT COALESCE(d.engine, m.engine) FROM deployments d
            JOIN catalog_models m ON m.id = d.model_id
            WHERE d.id = replicas.deployment_id
          )
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("replicas") as batch:
        for column in ("engine", "model_id", "generation"):
            batch.drop_column(column)
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("generation")
