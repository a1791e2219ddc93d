"""The liveness reconciler looks for waking nodes every pass: index `nodes.power`.

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_nodes_power", "nodes", ["power"])


def downgrade() -> None:
    op.drop_index("ix_nodes_power", table_name="nodes")
