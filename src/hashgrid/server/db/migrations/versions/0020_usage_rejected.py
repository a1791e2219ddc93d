"""Usage records a gateway sent that are not valid are set aside in `usage_rejected` instead of
failing their batch; `usage_records.usage_clamped` marks records whose node reported token
counts the gateway did not trust.

Revision ID: 0020
Revises: 0019
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_rejected",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(100), nullable=True),
        sa.Column("gateway", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_usage_rejected"),
    )
    op.create_index("ix_usage_rejected_received_at", "usage_rejected", ["received_at"])
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(
            sa.Column("usage_clamped", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("usage_clamped")
    op.drop_index("ix_usage_rejected_received_at", table_name="usage_rejected")
    op.drop_table("usage_rejected")
