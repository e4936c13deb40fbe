"""Ledger read models: accounts, wallet balances, statements, journal, totals, transactions.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from projections.schema import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.String(36)
AutoId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "projection_positions",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "accounts",
        sa.Column("id", Id, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("site_id", sa.String(64)),
        sa.Column("unit", sa.String(64)),
        sa.Column("contact", sa.String(200)),
        sa.Column("phone", sa.String(64)),
        sa.Column("area_m2", sa.String(32)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("opened_at", UTCDateTime, nullable=False),
        sa.Column("closed_at", UTCDateTime),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "wallet_balances",
        sa.Column("account_id", Id, primary_key=True),
        sa.Column("wallet", sa.String(16), primary_key=True),
        sa.Column("balance_fen", sa.BigInteger, nullable=False),
        sa.Column("paid_in_fen", sa.BigInteger, nullable=False),
        sa.Column("gift_in_fen", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "statement_entries",
        sa.Column("id", AutoId, primary_key=True, autoincrement=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("account_id", Id, nullable=False),
        sa.Column("wallet", sa.String(16), nullable=False),
        sa.Column("transaction_id", Id, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("balance_after_fen", sa.BigInteger, nullable=False),
        sa.Column("effective_at", UTCDateTime, nullable=False),
        sa.Column("recorded_at", UTCDateTime, nullable=False),
        sa.Column("actor", sa.String(200)),
        sa.Column("channel", sa.String(16)),
        sa.Column("reference", sa.String(200)),
        sa.Column("reason", sa.Text),
        sa.Column("corrects", Id),
    )
    op.create_index("ix_statement_account", "statement_entries", ["account_id", "id"])
    op.create_index("ix_statement_account_effective", "statement_entries",
                    ["account_id", "effective_at"])
    op.create_table(
        "journal_postings",
        sa.Column("id", AutoId, primary_key=True, autoincrement=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("transaction_id", Id, nullable=False),
        sa.Column("account_id", Id, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("ledger_account", sa.String(120), nullable=False),
        sa.Column("debit_fen", sa.BigInteger, nullable=False),
        sa.Column("credit_fen", sa.BigInteger, nullable=False),
        sa.Column("effective_at", UTCDateTime, nullable=False),
        sa.Column("recorded_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_journal_ledger_account", "journal_postings",
                    ["ledger_account", "effective_at"])
    op.create_index("ix_journal_transaction", "journal_postings", ["transaction_id"])
    op.create_index("ix_journal_effective", "journal_postings", ["effective_at"])
    op.create_table(
        "ledger_totals",
        sa.Column("ledger_account", sa.String(120), primary_key=True),
        sa.Column("debit_fen", sa.BigInteger, nullable=False),
        sa.Column("credit_fen", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "transactions",
        sa.Column("id", Id, primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("account_id", Id, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("wallet", sa.String(16)),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("channel", sa.String(16)),
        sa.Column("reference", sa.String(200)),
        sa.Column("effective_at", UTCDateTime, nullable=False),
        sa.Column("recorded_at", UTCDateTime, nullable=False),
        sa.Column("actor", sa.String(200)),
        sa.Column("corrects", Id),
        sa.Column("reversed_by", Id),
    )
    op.create_index("ix_transactions_account", "transactions", ["account_id", "recorded_at"])


def downgrade() -> None:
    for table in ("transactions", "ledger_totals", "journal_postings", "statement_entries",
                  "wallet_balances", "accounts", "projection_positions"):
        op.drop_table(table)
