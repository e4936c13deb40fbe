"""Alerts and the notification outbox.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from projections.schema import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("key", sa.String(120), primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("wallet", sa.String(16), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("balance_fen", sa.BigInteger(), nullable=False),
        sa.Column("threshold_fen", sa.BigInteger(), nullable=False),
        sa.Column("days_left", sa.Integer()),
        sa.Column("raised_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_alerts_account", "alerts", ["account_id", "position"])
    op.create_table(
        "alerts_owner",
        sa.Column("alerts_id", sa.String(36), primary_key=True),
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("wallet", sa.String(16), nullable=False),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("alert_key", sa.String(120), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime()),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_notifications_due", "notifications", ["status", "next_attempt_at"])
    op.create_index("ix_notifications_alert", "notifications", ["alert_key"])


def downgrade() -> None:
    for table in ("notifications", "alerts_owner", "alerts"):
        op.drop_table(table)
