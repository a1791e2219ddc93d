"""Sites get a power state, a power model, curtailment events and planned intervals.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _site_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["site_id"], ["sites.id"], name=op.f(f"fk_{table}_site_id_sites"), ondelete="CASCADE"
    )


def upgrade() -> None:
    with op.batch_alter_table("sites") as batch:
        batch.add_column(
            sa.Column("power_state", sa.String(16), nullable=False, server_default="active")
        )
    op.create_table(
        "site_power",
        sa.Column("site_id", sa.String(32), nullable=False),
        sa.Column("model", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _site_fk("site_power"),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_site_power")),
    )
    op.create_table(
        "curtailments",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("site_id", sa.String(32), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("target_mw", sa.Float(), nullable=False),
        sa.Column("by", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("load_mw", sa.Float(), nullable=False),
        sa.Column("asic_shed_mw", sa.Float(), nullable=False),
        sa.Column("flex_shed_mw", sa.Float(), nullable=False),
        sa.Column("firm_shed_mw", sa.Float(), nullable=False),
        sa.Column("asic_kept_mw", sa.JSON(), nullable=False),
        sa.Column("power_state", sa.String(16), nullable=False),
        sa.Column("price_usd_per_mwh", sa.Float(), nullable=True),
        sa.Column("mining_usd_per_mwh", sa.Float(), nullable=True),
        sa.Column("energy_saved_usd", sa.Float(), nullable=True),
        sa.Column("mining_foregone_usd", sa.Float(), nullable=True),
        _site_fk("curtailments"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_curtailments")),
    )
    op.create_index(op.f("ix_curtailments_site_id"), "curtailments", ["site_id"])
    op.create_table(
        "power_plans",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("site_id", sa.String(32), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hours", sa.Float(), nullable=False),
        sa.Column("mining_mw", sa.Float(), nullable=False),
        sa.Column("asic_mw", sa.JSON(), nullable=False),
        sa.Column("inference_mw", sa.Float(), nullable=False),
        sa.Column("offered_mw", sa.Float(), nullable=False),
        sa.Column("price_usd_per_mwh", sa.Float(), nullable=False),
        sa.Column("mining_usd", sa.Float(), nullable=False),
        sa.Column("inference_usd", sa.Float(), nullable=False),
        sa.Column("ancillary_usd", sa.Float(), nullable=False),
        sa.Column("energy_usd", sa.Float(), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _site_fk("power_plans"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_power_plans")),
        sa.UniqueConstraint("site_id", "start", name=op.f("uq_power_plans_site_id")),
    )
    op.create_index(op.f("ix_power_plans_site_id"), "power_plans", ["site_id"])


def downgrade() -> None:
    op.drop_table("power_plans")
    op.drop_table("curtailments")
    op.drop_table("site_power")
    with op.batch_alter_table("sites") as batch:
        batch.drop_column("power_state")
