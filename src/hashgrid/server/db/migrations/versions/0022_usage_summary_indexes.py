"""Usage summaries read the scoped indexes alone: on PostgreSQL the (customer_id, started_at)
and (node_id, started_at) indexes of usage records also hold what a summary sums and groups by
(an index-only scan, where reading the records themselves took 4 to 9 times as long at a
million records, bench/tenancy.py), and the planner is told how few UTC days the records span
(statistics on the day expression of server/usage/dialects.py), so that it sums them in a hash
table instead of sorting every record first. SQLite keeps its indexes as they are.

Revision ID: 0022
Revises: 0021
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUMMED = ["model", "key_id", "site", "prompt_tokens", "completion_tokens", "cost_usd"]
INDEXES = {
    "ix_usage_records_customer_started": ["customer_id", "started_at"],
    "ix_usage_records_node_started": ["node_id", "started_at"],
}
DAY = "CAST(timezone('UTC', started_at) AS DATE)"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, columns in INDEXES.items():
        op.drop_index(name, table_name="usage_records")
        op.create_index(name, "usage_records", columns, postgresql_include=SUMMED)
    op.execute(f"CREATE STATISTICS usage_records_day ON ({DAY}) FROM usage_records")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP STATISTICS usage_records_day")
    for name, columns in INDEXES.items():
        op.drop_index(name, table_name="usage_records")
        op.create_index(name, "usage_records", columns)
