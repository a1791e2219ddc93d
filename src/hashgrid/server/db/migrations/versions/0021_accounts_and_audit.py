"""Users, their memberships in organizations, personal tokens, browser sessions, invites, and
the audit log; a deployment may be private to one customer; usage records are indexed for the
reads scoped to a customer or to an operator's nodes.

Revision ID: 0021
Revises: 0020
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def _user_and_organization(table: str) -> list[sa.Column[str]]:
    return [
        sa.Column(
            "user_id",
            sa.String(32),
            sa.ForeignKey("users.id", ondelete="CASCADE", name=f"fk_{table}_user_id_users"),
            nullable=False,
        ),
        sa.Column(
            "organization_id",
            sa.String(32),
            sa.ForeignKey(
                "organizations.id",
                ondelete="CASCADE",
                name=f"fk_{table}_organization_id_organizations",
            ),
            nullable=False,
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_table(
        "memberships",
        sa.Column("id", sa.String(32), nullable=False),
        *_user_and_organization("memberships"),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_memberships"),
        sa.UniqueConstraint("user_id", "organization_id", name="uq_memberships_user_id"),
    )
    op.create_index("ix_memberships_user_id", "memberships", ["user_id"])
    op.create_index("ix_memberships_organization_id", "memberships", ["organization_id"])
    op.create_table(
        "personal_tokens",
        sa.Column("id", sa.String(32), nullable=False),
        *_user_and_organization("personal_tokens"),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("revoked_at", WHEN, nullable=True),
        sa.Column("last_used_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_personal_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_personal_tokens_token_hash"),
    )
    op.create_index("ix_personal_tokens_user_id", "personal_tokens", ["user_id"])
    op.create_table(
        "browser_sessions",
        sa.Column("id", sa.String(32), nullable=False),
        *_user_and_organization("browser_sessions"),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("csrf_hash", sa.String(64), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("revoked_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_browser_sessions"),
        sa.UniqueConstraint("token_hash", name="uq_browser_sessions_token_hash"),
    )
    op.create_index("ix_browser_sessions_user_id", "browser_sessions", ["user_id"])
    op.create_table(
        "invites",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column(
            "organization_id",
            sa.String(32),
            sa.ForeignKey(
                "organizations.id",
                ondelete="CASCADE",
                name="fk_invites_organization_id_organizations",
            ),
            nullable=True,
        ),
        sa.Column("kind", sa.String(16), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("used_at", WHEN, nullable=True),
        sa.Column("used_by", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_invites"),
        sa.UniqueConstraint("code_hash", name="uq_invites_code_hash"),
    )
    op.create_index("ix_invites_organization_id", "invites", ["organization_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("organization_id", sa.String(32), nullable=True),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(300), nullable=False),
        sa.Column("touched", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_organization_id", "audit_log", ["organization_id"])
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("customer_id", sa.String(32), nullable=True))
        batch.create_foreign_key(
            "fk_deployments_customer_id_organizations", "organizations", ["customer_id"], ["id"]
        )
        batch.create_index("ix_deployments_customer_id", ["customer_id"])
    op.create_index(
        "ix_usage_records_customer_started", "usage_records", ["customer_id", "started_at"]
    )
    op.create_index("ix_usage_records_node_started", "usage_records", ["node_id", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_usage_records_node_started", "usage_records")
    op.drop_index("ix_usage_records_customer_started", "usage_records")
    with op.batch_alter_table("deployments") as batch:
        batch.drop_index("ix_deployments_customer_id")
        batch.drop_constraint("fk_deployments_customer_id_organizations", type_="foreignkey")
        batch.drop_column("customer_id")
    for table in ("audit_log", "invites", "browser_sessions", "personal_tokens", "memberships"):
        op.drop_table(table)
    op.drop_table("users")
