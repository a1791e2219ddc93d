"""Spot-checks gateways report, and the reliability scores of nodes and sites.

Revision ID: 0028
Revises: 0027
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "spot_checks",
        sa.Column("check_id", sa.String(100), nullable=False),
        sa.Column("request_id", sa.String(100), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("node_id", sa.String(32), nullable=False),
        sa.Column("replica_id", sa.String(32), nullable=False),
        sa.Column("reference_node_id", sa.String(32), nullable=False),
        sa.Column("reference_replica_id", sa.String(32), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("agreement", sa.Float(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("checked_at", WHEN, nullable=False),
        sa.Column("received_at", WHEN, nullable=False),
        sa.Column("gateway_id", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("check_id", name="pk_spot_checks"),
    )
    op.create_index("ix_spot_checks_node_checked", "spot_checks", ["node_id", "checked_at"])
    op.create_table(
        "reliability_scores",
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("subject_id", sa.String(32), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("parts", sa.JSON(), nullable=False),
        sa.Column("up_s", sa.Float(), nullable=False),
        sa.Column("seen_s", sa.Float(), nullable=False),
        sa.Column("computed_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("kind", "subject_id", name="pk_reliability_scores"),
    )


def downgrade() -> None:
    op.drop_table("reliability_scores")
    op.drop_index("ix_spot_checks_node_checked", table_name="spot_checks")
    op.drop_table("spot_checks")
