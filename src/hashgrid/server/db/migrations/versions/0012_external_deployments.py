"""Deployments may be external: an endpoint run outside hashgrid at a site, with no catalog
model (bring your own endpoint).

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.alter_column("model_id", existing_type=sa.String(32), nullable=True)
        batch.add_column(sa.Column("endpoint", sa.String(500), nullable=True))
        batch.add_column(sa.Column("site_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("task", sa.String(16), nullable=True))
        batch.create_foreign_key(op.f("fk_deployments_site_id_sites"), "sites", ["site_id"], ["id"])


def downgrade() -> None:
    op.execute("DELETE FROM deployments WHERE model_id IS NULL")
    with op.batch_alter_table("deployments") as batch:
        batch.drop_constraint(op.f("fk_deployments_site_id_sites"), type_="foreignkey")
        for column in ("task", "site_id", "endpoint"):
            batch.drop_column(column)
        batch.alter_column("model_id", existing_type=sa.String(32), nullable=False)
