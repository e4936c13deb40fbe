"""Property operations: the exact cost per meter and day; property-fee schedules.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consumption_daily") as batch:
        batch.add_column(sa.Column("cost_units", sa.BigInteger(), nullable=False,
                                   server_default="0"))
    op.create_table(
        "property_fee_schedules",
        sa.Column("account_id", sa.String(36), primary_key=True),
        sa.Column("day_of_month", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("property_fee_schedules")
    with op.batch_alter_table("consumption_daily") as batch:
        batch.drop_column("cost_units")
