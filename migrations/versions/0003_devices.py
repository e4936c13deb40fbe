"""Devices: device commands; meters' online state and keep-power end.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from projections.schema import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("meters") as batch:
        batch.add_column(sa.Column("online", sa.Boolean(), nullable=False,
                                   server_default=sa.true()))
        batch.add_column(sa.Column("keep_power_until", UTCDateTime(), nullable=True))
    op.create_table(
        "device_commands",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("meter_id", sa.String(36), nullable=False),
        sa.Column("gateway_id", sa.String(36)),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime()),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_device_commands_due", "device_commands", ["status", "next_attempt_at"])
    op.create_index("ix_device_commands_meter", "device_commands", ["meter_id", "position"])


def downgrade() -> None:
    op.drop_table("device_commands")
    with op.batch_alter_table("meters") as batch:
        batch.drop_column("keep_power_until")
        batch.drop_column("online")
