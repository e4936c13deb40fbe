"""Poll results per gateway and cycle (the collection report and its success rate).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "poll_results",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  primary_key=True, autoincrement=True),
        sa.Column("gateway_id", sa.String(36), nullable=False),
        sa.Column("site_id", sa.String(36)),
        sa.Column("polled_at", sa.DateTime(), nullable=False),
        sa.Column("meters", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
    )
    op.create_index("ix_poll_results_gateway", "poll_results", ["gateway_id", "polled_at"])
    op.create_index("ix_poll_results_polled", "poll_results", ["polled_at"])


def downgrade() -> None:
    op.drop_table("poll_results")
