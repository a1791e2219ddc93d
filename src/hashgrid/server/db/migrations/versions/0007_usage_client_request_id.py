"""Usage records keep the client's own request id beside the gateway's.

The gateway's id is the record's key and is always its own, so a client that repeats an
`x-request-id` is billed for each request; the client's id is kept to find its records.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch_op:
        batch_op.add_column(sa.Column("client_request_id", sa.String(200), nullable=True))
        batch_op.create_index("ix_usage_records_client_request_id", ["client_request_id"])


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch_op:
        batch_op.drop_index("ix_usage_records_client_request_id")
        batch_op.drop_column("client_request_id")
