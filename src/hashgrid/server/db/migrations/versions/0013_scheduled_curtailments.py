"""Curtailments may be scheduled for their deadline: `starts_at` says when shedding is due to
begin, and `started_at` stays empty until it does.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("curtailments") as batch:
        batch.add_column(sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True))
        batch.alter_column("started_at", existing_type=sa.DateTime(timezone=True), nullable=True)
    op.execute("UPDATE curtailments SET starts_at = started_at")  # each began when it was due
    with op.batch_alter_table("curtailments") as batch:
        batch.alter_column("starts_at", existing_type=sa.DateTime(timezone=True), nullable=False)


def downgrade() -> None:
    # Events that never began (scheduled, or cancelled before they began) cannot be kept.
    op.execute("DELETE FROM curtailments WHERE started_at IS NULL")
    with op.batch_alter_table("curtailments") as batch:
        batch.alter_column("started_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch.drop_column("starts_at")
