"""A partial covering index of the statement rows the sales report sums.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SALES_ROWS = "kind IN ('top_up', 'refund', 'reversal', 'gift')"


def upgrade() -> None:
    op.create_index(
        "ix_statement_sales", "statement_entries", ["effective_at"],
        postgresql_include=["kind", "account_id", "channel", "actor", "amount_fen",
                            "recorded_at"],
        postgresql_where=sa.text(SALES_ROWS), sqlite_where=sa.text(SALES_ROWS))


def downgrade() -> None:
    op.drop_index("ix_statement_sales", table_name="statement_entries")
