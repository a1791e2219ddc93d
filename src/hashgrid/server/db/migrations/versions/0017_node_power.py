"""GPU nodes may be powered off while idle and woken for work: `nodes.power`; the site agent's
report says what each node's BMC did.

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("power", sa.String(16), nullable=False, server_default="on"))
        batch.add_column(sa.Column("power_changed_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("miner_reports") as batch:
        batch.add_column(sa.Column("nodes", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("miner_reports") as batch:
        batch.drop_column("nodes")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("power_changed_at")
        batch.drop_column("power")
