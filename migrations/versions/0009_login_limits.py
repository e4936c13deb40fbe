"""Login limits per username and client address; the operators' credentials version.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows start at 0: tokens issued before the next change of password or
    # active state stay valid until then, and are refused after it.
    op.add_column("operators", sa.Column("credentials_version", sa.Integer(),
                                         nullable=False, server_default="0"))
    op.create_table(
        "login_limits",
        sa.Column("key", sa.String(140), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(), nullable=False),
        sa.Column("locked_until", sa.DateTime()),
    )
    op.drop_table("login_failures")


def downgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime()),
        sa.Column("last_failure_at", sa.DateTime(), nullable=False),
    )
    op.drop_table("login_limits")
    with op.batch_alter_table("operators") as batch:
        batch.drop_column("credentials_version")
