"""The alerts' read models: balance alerts, which account each alert series watches, and
the notifications sent for them.

Alembic (``migrations/``) creates them; this is their shape.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    String,
    Table,
)

from projections.schema import Id, UTCDateTime, metadata

alerts = Table(
    "alerts", metadata,
    Column("key", String(120), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("account_id", Id, nullable=False),
    Column("wallet", String(16), nullable=False),
    Column("level", String(16), nullable=False),
    Column("balance_fen", BigInteger, nullable=False),
    Column("threshold_fen", BigInteger, nullable=False),
    Column("days_left", Integer),
    Column("raised_at", UTCDateTime, nullable=False),
    Index("ix_alerts_account", "account_id", "position"),
)

alerts_owner = Table(
    "alerts_owner", metadata,
    Column("alerts_id", Id, primary_key=True),
    Column("account_id", Id, nullable=False),
    Column("wallet", String(16), nullable=False),
)

notifications = Table(
    "notifications", metadata,
    Column("id", Id, primary_key=True),
    Column("alert_key", String(120), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime),
    Column("position", BigInteger, nullable=False),
    Index("ix_notifications_due", "status", "next_attempt_at"),
    Index("ix_notifications_alert", "alert_key"),
)

# The tables the view projects from the log (a rebuild empties them).
VIEW_TABLES = (alerts, alerts_owner, notifications)
