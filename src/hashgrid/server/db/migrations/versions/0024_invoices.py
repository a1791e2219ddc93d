"""Invoices: a customer's issued invoices and their lines (each line's nodes and their owners at
issue, as JSON), the yearly counter that numbers them in order, and each operator's share of what
its nodes earn (basis points, 70% by default).

Revision ID: 0024
Revises: 0023
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)
LIVE = sa.text("status != 'void'")


def upgrade() -> None:
    op.create_table(
        "invoices",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("number", sa.String(20), nullable=False),
        sa.Column(
            "customer_id",
            sa.String(32),
            sa.ForeignKey("organizations.id", name="fk_invoices_customer_id_organizations"),
            nullable=False,
        ),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("issued_at", WHEN, nullable=False),
        sa.Column("paid_at", WHEN, nullable=True),
        sa.Column("voided_at", WHEN, nullable=True),
        sa.Column("subtotal_cents", sa.BigInteger(), nullable=False),
        sa.Column("credits_cents", sa.BigInteger(), nullable=False),
        sa.Column("total_cents", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_invoices"),
        sa.UniqueConstraint("number", name="uq_invoices_number"),
    )
    op.create_index("ix_invoices_customer_id", "invoices", ["customer_id"])
    op.create_index("ix_invoices_period", "invoices", ["period"])
    op.create_index(
        "uq_invoices_customer_period_live",
        "invoices",
        ["customer_id", "period"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
    op.create_table(
        "invoice_lines",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column(
            "invoice_id",
            sa.String(32),
            sa.ForeignKey(
                "invoices.id", ondelete="CASCADE", name="fk_invoice_lines_invoice_id_invoices"
            ),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("tier", sa.String(8), nullable=True),
        sa.Column("ref", sa.String(100), nullable=True),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("unit", sa.String(32), nullable=False),
        sa.Column("unit_price_pico", sa.BigInteger(), nullable=False),
        sa.Column("amount_pico", sa.BigInteger(), nullable=False),
        sa.Column("cents", sa.BigInteger(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_invoice_lines"),
    )
    op.create_index("ix_invoice_lines_invoice_id", "invoice_lines", ["invoice_id"])
    op.create_table(
        "invoice_numbers",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("year", name="pk_invoice_numbers"),
    )
    with op.batch_alter_table("organizations") as batch:
        batch.add_column(
            sa.Column("operator_share_bps", sa.Integer(), nullable=False, server_default="7000")
        )


def downgrade() -> None:
    with op.batch_alter_table("organizations") as batch:
        batch.drop_column("operator_share_bps")
    op.drop_table("invoice_numbers")
    op.drop_index("ix_invoice_lines_invoice_id", table_name="invoice_lines")
    op.drop_table("invoice_lines")
    op.drop_index("uq_invoices_customer_period_live", table_name="invoices")
    op.drop_index("ix_invoices_period", table_name="invoices")
    op.drop_index("ix_invoices_customer_id", table_name="invoices")
    op.drop_table("invoices")
