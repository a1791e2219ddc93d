"""Compute contracts: a customer's reserved replicas of a deployment at a price per
replica-hour for a term, each watched hour of them, and the replicas placed for them.

Revision ID: 0026
Revises: 0025
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "compute_contracts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column(
            "customer_id",
            sa.String(32),
            sa.ForeignKey(
                "organizations.id", name="fk_compute_contracts_customer_id_organizations"
            ),
            nullable=False,
        ),
        sa.Column("deployment_id", sa.String(32), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("replicas", sa.Integer(), nullable=False),
        sa.Column("regions", sa.JSON(), nullable=False),
        sa.Column("price_pico", sa.BigInteger(), nullable=False),
        sa.Column("sla_credit_percent", sa.Integer(), nullable=False),
        sa.Column("starts_at", WHEN, nullable=False),
        sa.Column("ends_at", WHEN, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("cancelled_at", WHEN, nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_compute_contracts"),
    )
    for column in ("customer_id", "deployment_id", "status"):
        op.create_index(f"ix_compute_contracts_{column}", "compute_contracts", [column])
    op.create_table(
        "contract_hours",
        sa.Column(
            "contract_id",
            sa.String(32),
            sa.ForeignKey(
                "compute_contracts.id", name="fk_contract_hours_contract_id_compute_contracts"
            ),
            nullable=False,
        ),
        sa.Column("hour", WHEN, nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.Column("min_ready", sa.Integer(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("hosted", sa.JSON(), nullable=False),
        sa.Column("missed", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("contract_id", "hour", name="pk_contract_hours"),
    )
    with op.batch_alter_table("replicas") as batch:
        batch.add_column(sa.Column("contract_id", sa.String(32), nullable=True))
        batch.create_index("ix_replicas_contract_id", ["contract_id"])


def downgrade() -> None:
    with op.batch_alter_table("replicas") as batch:
        batch.drop_index("ix_replicas_contract_id")
        batch.drop_column("contract_id")
    op.drop_table("contract_hours")
    for column in ("customer_id", "deployment_id", "status"):
        op.drop_index(f"ix_compute_contracts_{column}", table_name="compute_contracts")
    op.drop_table("compute_contracts")
