"""The read-model tables. Alembic (``migrations/``) creates them; this is their shape.

Times are stored as naive UTC (``UTCDateTime``) so that SQLite and PostgreSQL compare and
order them the same way; they come back timezone-aware.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

metadata = MetaData()

Id = String(36)
Fen = BigInteger
AutoId = BigInteger().with_variant(Integer, "sqlite")


class UTCDateTime(TypeDecorator):
    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        assert value.tzinfo is not None, "times are stored from aware datetimes only"
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


projection_positions = Table(
    "projection_positions", metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),
)

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

LEDGER_VIEW_TABLES = (accounts, wallet_balances, statement_entries, journal_postings,
                      ledger_totals, transactions)
