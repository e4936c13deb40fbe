"""The accounts' read models: accounts, wallet balances, statements, the journal, ledger
totals, transactions and the monthly sums of the account-period report.

Alembic (``migrations/``) creates them; this is their shape.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    String,
    Table,
    Text,
    text,
)

from projections.schema import AutoId, Fen, Id, UTCDateTime, metadata

accounts = Table(
    "accounts", metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("site_id", String(64)),
    Column("unit", String(64)),
    Column("contact", String(200)),
    Column("phone", String(64)),
    Column("area_m2", String(32)),
    Column("status", String(16), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime),
    Column("position", BigInteger, nullable=False),
)

wallet_balances = Table(
    "wallet_balances", metadata,
    Column("account_id", Id, primary_key=True),
    Column("wallet", String(16), primary_key=True),
    Column("balance_fen", Fen, nullable=False),
    Column("paid_in_fen", Fen, nullable=False),
    Column("gift_in_fen", Fen, nullable=False),
)

# The kinds of statement rows the sales report sums (projections/reports.py), and the
# predicate of the partial index that holds them (migrations/versions/0012_...).
SALES_KINDS = ("top_up", "refund", "reversal", "gift")
SALES_ROWS = "kind IN (" + ", ".join(f"'{kind}'" for kind in SALES_KINDS) + ")"

statement_entries = Table(
    "statement_entries", metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("position", BigInteger, nullable=False),
    Column("account_id", Id, nullable=False),
    Column("wallet", String(16), nullable=False),
    Column("transaction_id", Id, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("amount_fen", Fen, nullable=False),
    Column("balance_after_fen", Fen, nullable=False),
    Column("effective_at", UTCDateTime, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("actor", String(200)),
    Column("channel", String(16)),
    Column("reference", String(200)),
    Column("reason", Text),
    Column("corrects", Id),
    Index("ix_statement_account", "account_id", "id"),
    Index("ix_statement_account_effective", "account_id", "effective_at"),
    # The sales report's rows only (a few percent of the table: consumption charges are
    # the rest), with every column it reads, so that it scans this index alone.
    Index("ix_statement_sales", "effective_at",
          postgresql_include=["kind", "account_id", "channel", "actor", "amount_fen",
                              "recorded_at"],
          postgresql_where=text(SALES_ROWS), sqlite_where=text(SALES_ROWS)),
)

journal_postings = Table(
    "journal_postings", metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("position", BigInteger, nullable=False),
    Column("transaction_id", Id, nullable=False),
    Column("account_id", Id, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("ledger_account", String(120), nullable=False),
    Column("debit_fen", Fen, nullable=False),
    Column("credit_fen", Fen, nullable=False),
    Column("effective_at", UTCDateTime, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Index("ix_journal_ledger_account", "ledger_account", "effective_at"),
    Index("ix_journal_transaction", "transaction_id"),
    Index("ix_journal_effective", "effective_at"),
)

ledger_totals = Table(
    "ledger_totals", metadata,
    Column("ledger_account", String(120), primary_key=True),
    Column("debit_fen", Fen, nullable=False),
    Column("credit_fen", Fen, nullable=False),
)

transactions = Table(
    "transactions", metadata,
    Column("id", Id, primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("account_id", Id, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("wallet", String(16)),
    Column("amount_fen", Fen, nullable=False),
    Column("channel", String(16)),
    Column("reference", String(200)),
    Column("effective_at", UTCDateTime, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("actor", String(200)),
    Column("corrects", Id),
    Column("reversed_by", Id),
    Index("ix_transactions_account", "account_id", "recorded_at"),
)

# Per account, wallet, local month (Asia/Shanghai) and kind: the sums the account-period
# report needs, kept as the events arrive so a month's report does not scan the years.
account_month_totals = Table(
    "account_month_totals", metadata,
    Column("account_id", Id, primary_key=True),
    Column("wallet", String(16), primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("amount_fen", Fen, nullable=False),
)

# The tables the view projects from the log (a rebuild empties them).
VIEW_TABLES = (account_month_totals, accounts, wallet_balances, statement_entries,
               journal_postings, ledger_totals, transactions)
