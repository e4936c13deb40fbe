"""Operators, API keys, approvals, the audit log, login throttling, generated secrets.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("roles", sa.String(200), nullable=False),
        sa.Column("site_ids", sa.Text(), nullable=False),
        sa.Column("account_ids", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("roles", sa.String(200), nullable=False),
        sa.Column("site_ids", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime()),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.Column("issued_by", sa.String(100)),
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("site_id", sa.String(64)),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(100), nullable=False),
        sa.Column("requested_by_id", sa.String(64), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("decided_by", sa.String(100)),
        sa.Column("decided_at", sa.DateTime()),
        sa.Column("note", sa.Text()),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_approvals_status", "approvals", ["status", "position"])
    op.create_table(
        "audit_log",
        sa.Column("position", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String(64), nullable=False),
        sa.Column("actor_name", sa.String(100)),
        sa.Column("request_id", sa.String(100)),
        sa.Column("approved_by", sa.String(100)),
        sa.Column("action", sa.String(80), nullable=False),
        sa.Column("aggregate_id", sa.String(36), nullable=False),
        sa.Column("aggregate_version", sa.Integer(), nullable=False),
    )
    op.create_index("ix_audit_actor", "audit_log", ["actor_id", "position"])
    op.create_index("ix_audit_recorded", "audit_log", ["recorded_at"])
    op.create_table(
        "login_failures",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime()),
        sa.Column("last_failure_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "platform_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    for table in ("platform_secrets", "login_failures", "audit_log", "approvals", "api_keys",
                  "operators"):
        op.drop_table(table)
