"""Monthly totals per account, wallet and kind for the account-period report.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_month_totals",
        sa.Column("account_id", sa.String(36), primary_key=True),
        sa.Column("wallet", sa.String(16), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("account_month_totals")
