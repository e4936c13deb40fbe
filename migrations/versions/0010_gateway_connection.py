"""Gateways: how each is reached (outbound or an inbound DTU), its registration id,
heartbeat and bus speed, and whether the device runtime last reached it.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gateways") as batch:
        batch.add_column(sa.Column("connect", sa.String(16), nullable=False,
                                   server_default="outbound"))
        batch.add_column(sa.Column("registration_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("heartbeat", sa.String(64), nullable=True))
        batch.add_column(sa.Column("baud", sa.Integer(), nullable=False,
                                   server_default="9600"))
        batch.add_column(sa.Column("reachable", sa.Boolean(), nullable=False,
                                   server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("gateways") as batch:
        batch.drop_column("reachable")
        batch.drop_column("baud")
        batch.drop_column("heartbeat")
        batch.drop_column("registration_id")
        batch.drop_column("connect")
