"""The read-model tables. Alembic (``migrations/``) creates them; this is their shape.

Times are stored as naive UTC (``UTCDateTime``) so that SQLite and PostgreSQL compare and
order them the same way; they come back timezone-aware.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
    true,
)

metadata = MetaData()

# The kinds of statement rows the sales report sums (projections/reports.py), and the
# predicate of the partial index that holds them (migrations/versions/0012_...).
SALES_KINDS = ("top_up", "refund", "reversal", "gift")
SALES_ROWS = "kind IN (" + ", ".join(f"'{kind}'" for kind in SALES_KINDS) + ")"

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

LEDGER_VIEW_TABLES = (account_month_totals, accounts, wallet_balances, statement_entries, journal_postings,
                      ledger_totals, transactions)

# -- metering ------------------------------------------------------------------------

sites = Table(
    "sites", metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("poll_interval_s", Integer, nullable=False),
)

site_units = Table(
    "site_units", metadata,
    Column("site_id", Id, primary_key=True),
    Column("code", String(64), primary_key=True),
    Column("building", String(64), nullable=False),
    Column("floor", String(32), nullable=False),
    Column("area_m2", String(32)),
)

gateways = Table(
    "gateways", metadata,
    Column("id", Id, primary_key=True),
    Column("site_id", Id, nullable=False),
    Column("name", String(120), nullable=False),
    Column("host", String(255), nullable=False),
    Column("port", Integer, nullable=False),
    Column("protocol", String(32), nullable=False),
    Column("connect", String(16), nullable=False, server_default="outbound"),
    Column("registration_id", String(64)),
    Column("heartbeat", String(64)),
    Column("baud", Integer, nullable=False, server_default="9600"),
    Column("reachable", Boolean, nullable=False, server_default=true()),
    Column("position", BigInteger, nullable=False),
)

tariffs = Table(
    "tariffs", metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("utility", String(16), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("versions", Integer, nullable=False),
    Column("current_from", UTCDateTime, nullable=False),
    Column("position", BigInteger, nullable=False),
)

meters = Table(
    "meters", metadata,
    Column("id", Id, primary_key=True),
    Column("meter_no", String(12), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("site_id", Id),
    Column("gateway_id", Id),
    Column("address", Integer, nullable=False),
    Column("profile", String(32), nullable=False),
    Column("ct_ratio", Integer, nullable=False),
    Column("building", String(64)),
    Column("floor", String(32)),
    Column("unit", String(64)),
    Column("account_id", Id),
    Column("tariff_id", Id),
    Column("status", String(16), nullable=False),
    Column("replaced_by", Id),
    Column("online", Boolean, nullable=False, server_default=true()),
    Column("keep_power_until", UTCDateTime),
    Column("position", BigInteger, nullable=False),
    Index("ix_meters_account", "account_id"),
    Index("ix_meters_gateway", "gateway_id"),
    Index("ix_meters_position", "position"),
)

consumption_daily = Table(
    "consumption_daily", metadata,
    Column("meter_id", Id, primary_key=True),
    Column("day", String(10), primary_key=True),  # site-local YYYY-MM-DD
    Column("account_id", Id),
    Column("energy_wh", BigInteger, nullable=False),
    Column("charge_fen", BigInteger, nullable=False),
    Column("cost_units", BigInteger, nullable=False, server_default="0"),  # 1e-5 fen
    Index("ix_consumption_day", "day"),
    Index("ix_consumption_account_day", "account_id", "day"),
)

meter_alerts = Table(
    "meter_alerts", metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("position", BigInteger, nullable=False),
    Column("meter_id", Id, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("read_at", UTCDateTime),
    Column("reason", Text, nullable=False),
    Column("raised_at", UTCDateTime, nullable=False),
    Index("ix_meter_alerts_meter", "meter_id", "id"),
)

# Telemetry, written directly (not a projection): readings are too many to be events.
meter_readings = Table(
    "meter_readings", metadata,
    Column("meter_id", Id, primary_key=True),
    Column("read_at", UTCDateTime, primary_key=True),
    Column("total", BigInteger, nullable=False),
    Column("sharp", BigInteger),
    Column("peak", BigInteger),
    Column("flat", BigInteger),
    Column("valley", BigInteger),
    Column("power_w", Integer),
    Column("voltage_dv", Integer),
    Column("current_ca", Integer),
    Column("relay", String(8)),
    Column("billing", String(16), nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
)

device_commands = Table(
    "device_commands", metadata,
    Column("id", Id, primary_key=True),
    Column("meter_id", Id, nullable=False),
    Column("gateway_id", Id),
    Column("action", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime),
    Column("issued_at", UTCDateTime, nullable=False),
    Column("position", BigInteger, nullable=False),
    Index("ix_device_commands_due", "status", "next_attempt_at"),
    Index("ix_device_commands_meter", "meter_id", "position"),
)

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

property_fee_schedules = Table(
    "property_fee_schedules", metadata,
    Column("account_id", Id, primary_key=True),
    Column("day_of_month", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),
)

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

METERING_VIEW_TABLES = (alerts, alerts_owner, notifications, property_fee_schedules, payment_orders, rejected_notifications, sites, site_units, gateways, tariffs, meters, consumption_daily,
                        meter_alerts, device_commands)

# -- access: operators, API keys, approvals, the audit log ------------------------------

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

ACCESS_VIEW_TABLES = (operators, api_keys, approvals, audit_log)

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

# One row per gateway and polling cycle (operational, not a projection): the collection
# report and the read success rate come from here.
poll_results = Table(
    "poll_results", metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("gateway_id", Id, nullable=False),
    Column("site_id", Id),
    Column("polled_at", UTCDateTime, nullable=False),
    Column("meters", Integer, nullable=False),
    Column("answered", Integer, nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Index("ix_poll_results_gateway", "gateway_id", "polled_at"),
    Index("ix_poll_results_polled", "polled_at"),
)
