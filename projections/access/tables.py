"""The access read models: operators, API keys, approvals and the audit log; and the
login limits and platform secrets, operational state written directly.

Alembic (``migrations/``) creates them; this is their shape.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from projections.schema import Id, UTCDateTime, metadata

operators = Table(
    "operators", metadata,
    Column("id", Id, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("roles", String(200), nullable=False),         # comma-separated
    Column("site_ids", Text, nullable=False),            # comma-separated, "" = every site
    Column("account_ids", Text, nullable=False),         # comma-separated (tenants)
    Column("active", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    # The operator's version at its last password change, deactivation or reactivation:
    # tokens issued at an earlier version are refused.
    Column("credentials_version", Integer, nullable=False, server_default="0"),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("secret_hash", String(64), nullable=False),   # SHA-256 of a 256-bit secret
    Column("roles", String(200), nullable=False),
    Column("site_ids", Text, nullable=False),
    Column("expires_at", UTCDateTime),
    Column("revoked", Boolean, nullable=False),
    Column("issued_at", UTCDateTime, nullable=False),
    Column("issued_by", String(100)),
)

approvals = Table(
    "approvals", metadata,
    Column("id", Id, primary_key=True),
    Column("action", String(32), nullable=False),
    Column("target", String(64), nullable=False),
    Column("site_id", String(64)),
    Column("summary", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("requested_by", String(100), nullable=False),
    Column("requested_by_id", String(64), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("decided_by", String(100)),
    Column("decided_at", UTCDateTime),
    Column("note", Text),
    Column("position", BigInteger, nullable=False),
    Index("ix_approvals_status", "status", "position"),
)

audit_log = Table(
    "audit_log", metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("actor_kind", String(16), nullable=False),
    Column("actor_id", String(64), nullable=False),
    Column("actor_name", String(100)),
    Column("request_id", String(100)),
    Column("approved_by", String(100)),
    Column("action", String(80), nullable=False),
    Column("aggregate_id", Id, nullable=False),
    Column("aggregate_version", Integer, nullable=False),
    Index("ix_audit_actor", "actor_id", "position"),
    Index("ix_audit_recorded", "recorded_at"),
)

# Operational state, not projections of the log (a rebuild leaves them alone).
# Failed logins per "pair:<address>|<username>", "user:<username>" and "addr:<address>".
login_limits = Table(
    "login_limits", metadata,
    Column("key", String(140), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_started_at", UTCDateTime, nullable=False),
    Column("locked_until", UTCDateTime),
)

platform_secrets = Table(
    "platform_secrets", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# The tables the view projects from the log (a rebuild empties them).
VIEW_TABLES = (operators, api_keys, approvals, audit_log)
