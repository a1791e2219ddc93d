"""Stored plans record the nodes' work they were made from: later plans read it as demand.

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("power_plans") as batch:
        batch.add_column(sa.Column("firm_nodes", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("flex_nodes", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("power_plans") as batch:
        batch.drop_column("flex_nodes")
        batch.drop_column("firm_nodes")
