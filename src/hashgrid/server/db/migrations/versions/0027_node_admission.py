"""Nodes take customer traffic only once admitted: `nodes.admission` and its reason.

A node whose stored verification ran a benchmark and found no problem is admitted; every other
node is pending, and its agent is asked to benchmark again at its next heartbeat.

Revision ID: 0027
Revises: 0026
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PASSED = "its verification before admission existed ran the benchmark and found no problem"
WAITING = "awaiting a verification: none passed before admission existed"


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(
            sa.Column("admission", sa.String(16), nullable=False, server_default="pending")
        )
        batch.add_column(sa.Column("admission_reason", sa.String(2000), nullable=True))
    op.create_index("ix_nodes_admission", "nodes", ["admission"])
    nodes = sa.table(
        "nodes",
        sa.column("id", sa.String),
        sa.column("verification", sa.JSON),
        sa.column("admission", sa.String),
        sa.column("admission_reason", sa.String),
    )
    bind = op.get_bind()
    for node_id, verification in bind.execute(sa.select(nodes.c.id, nodes.c.verification)):
        passed = (
            isinstance(verification, dict)
            and verification.get("benchmark") is not None
            and not verification.get("problems")
        )
        bind.execute(
            nodes.update()
            .where(nodes.c.id == node_id)
            .values(
                admission="admitted" if passed else "pending",
                admission_reason=PASSED if passed else WAITING,
            )
        )


def downgrade() -> None:
    op.drop_index("ix_nodes_admission", table_name="nodes")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("admission_reason")
        batch.drop_column("admission")
