"""A site has at most one open curtailment (in force or scheduled): a partial unique index, so
that two requests at the same instant cannot both leave one open.

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("ended_at IS NULL")


def upgrade() -> None:
    # Should two be open already, the older ones end when the newest began: it replaced them.
    op.execute(
        """
        UPDATE curtailments SET ended_at = (
            SELECT MAX(newer.starts_at) FROM curtailments AS newer
            WHERE newer.site_id = curtailments.site_id AND newer.ended_at IS NULL
        )
        WHERE ended_at IS NULL AND starts_at < (
            SELECT MAX(newer.starts_at) FROM curtailments AS newer
            WHERE newer.site_id = curtailments.site_id AND newer.ended_at IS NULL
        )
        """
    )
    op.create_index(
        "uq_curtailments_open_site",
        "curtailments",
        ["site_id"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )


def downgrade() -> None:
    op.drop_index("uq_curtailments_open_site", table_name="curtailments")
