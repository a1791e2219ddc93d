"""The price book: effective-dated prices per model (the name clients call) and tier, and
customers' discounts; usage records keep what they were charged (tier, unit prices in
pico-dollars per token, discount, exact cost in pico-dollars) instead of a float cost, and the
invoice that bills them. Catalog models no longer carry prices.

Each deployment's catalog prices become its tier's first entry, in force from 2000-01-01; the
records stored before are priced at those prices (what they were charged, unless the catalog's
prices changed since).

Revision ID: 0023
Revises: 0022
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)
SINCE = datetime(2000, 1, 1, tzinfo=UTC)
INDEXES = {
    "ix_usage_records_customer_started": ["customer_id", "started_at"],
    "ix_usage_records_node_started": ["node_id", "started_at"],
}
SUMMED = ["model", "key_id", "site", "prompt_tokens", "completion_tokens", "cost_pico"]
PRICE_COLUMNS = ("price_prompt", "price_cached", "price_completion", "cost_pico")


def upgrade() -> None:
    prices = op.create_table(
        "prices",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("tier", sa.String(8), nullable=False),
        sa.Column("effective_from", WHEN, nullable=False),
        sa.Column("prompt", sa.BigInteger(), nullable=False),
        sa.Column("cached", sa.BigInteger(), nullable=False),
        sa.Column("completion", sa.BigInteger(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.UniqueConstraint("model", "tier", "effective_from"),
    )
    op.create_table(
        "discounts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "customer_id",
            sa.String(32),
            sa.ForeignKey("organizations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("bps", sa.Integer(), nullable=False),
        sa.Column("effective_from", WHEN, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.UniqueConstraint("customer_id", "model", "effective_from"),
    )
    op.create_index("ix_discounts_customer_id", "discounts", ["customer_id"])
    bind = op.get_bind()
    catalog = bind.execute(
        sa.text(
            "SELECT d.name, d.tier, m.price_per_mtok_prompt, m.price_per_mtok_completion "
            "FROM deployments d JOIN catalog_models m ON m.id = d.model_id"
        )
    ).all()
    now = datetime.now(UTC)
    entries = {
        name: (tier, _pico(prompt), _pico(completion)) for name, tier, prompt, completion in catalog
    }
    if entries:
        op.bulk_insert(
            prices,
            [
                {
                    "id": f"migrated{i:024d}",
                    "model": name,
                    "tier": tier,
                    "effective_from": SINCE,
                    "prompt": prompt,
                    "cached": prompt,
                    "completion": completion,
                    "created_at": now,
                }
                for i, (name, (tier, prompt, completion)) in enumerate(sorted(entries.items()))
            ],
        )
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        for name in INDEXES:
            op.drop_index(name, table_name="usage_records")
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("tier", sa.String(8), nullable=True))
        for column in ("cached_tokens", "discount_bps"):
            batch.add_column(sa.Column(column, sa.Integer(), nullable=False, server_default="0"))
        for column in PRICE_COLUMNS:
            batch.add_column(sa.Column(column, sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("priced", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("invoice_id", sa.String(32), nullable=True))
        batch.create_index("ix_usage_records_invoice_id", ["invoice_id"])
    for name, (tier, prompt, completion) in entries.items():
        bind.execute(
            sa.text(
                "UPDATE usage_records SET tier = :tier, price_prompt = :prompt, "
                "price_cached = :prompt, price_completion = :completion, "
                "cost_pico = prompt_tokens * :prompt + completion_tokens * :completion "
                "WHERE model = :name"
            ),
            {"name": name, "tier": tier, "prompt": prompt, "completion": completion},
        )
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("cost_usd")
    if postgres:
        for name, columns in INDEXES.items():
            op.create_index(name, "usage_records", columns, postgresql_include=SUMMED)
    with op.batch_alter_table("catalog_models") as batch:
        batch.drop_column("price_per_mtok_prompt")
        batch.drop_column("price_per_mtok_completion")


def _pico(usd_per_mtok: float | None) -> int:
    """A float USD per million tokens as pico-dollars per token (micro-dollars per 1M)."""
    return round((usd_per_mtok or 0.0) * 1_000_000)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("catalog_models") as batch:
        for column in ("price_per_mtok_prompt", "price_per_mtok_completion"):
            batch.add_column(sa.Column(column, sa.Float(), nullable=False, server_default="0"))
    if postgres:
        for name in INDEXES:
            op.drop_index(name, table_name="usage_records")
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("cost_usd", sa.Float(), nullable=False, server_default="0"))
    op.execute("UPDATE usage_records SET cost_usd = cost_pico / 1e12")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_index("ix_usage_records_invoice_id")
        for column in ("tier", "cached_tokens", "discount_bps", *PRICE_COLUMNS, "priced"):
            batch.drop_column(column)
        batch.drop_column("invoice_id")
    if postgres:
        summed = [*SUMMED[:-1], "cost_usd"]
        for name, columns in INDEXES.items():
            op.create_index(name, "usage_records", columns, postgresql_include=summed)
    op.drop_index("ix_discounts_customer_id", table_name="discounts")
    op.drop_table("discounts")
    op.drop_table("prices")
