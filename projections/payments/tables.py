"""The payments' read models: payment orders and rejected provider notifications.

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
)

from projections.schema import Id, UTCDateTime, metadata

payment_orders = Table(
    "payment_orders", metadata,
    Column("out_trade_no", String(32), primary_key=True),
    Column("id", Id, nullable=False),
    Column("account_id", Id, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("scene", String(16), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("provider_transaction_id", String(64)),
    Column("paid_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("position", BigInteger, nullable=False),
    Index("ix_payment_orders_status", "status", "created_at"),
)

rejected_notifications = Table(
    "rejected_notifications", metadata,
    Column("id", Id, primary_key=True),
    Column("provider", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("position", BigInteger, nullable=False),
)

# The tables the view projects from the log (a rebuild empties them).
VIEW_TABLES = (payment_orders, rejected_notifications)
