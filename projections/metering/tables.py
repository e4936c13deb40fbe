"""The metering read models: sites and their units, gateways, tariffs, meters, daily
consumption and meter alerts; and the readings table, written directly.

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
    true,
)

from projections.schema import AutoId, Id, UTCDateTime, metadata

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

# The tables the view projects from the log (a rebuild empties them).
VIEW_TABLES = (sites, site_units, gateways, tariffs, meters, consumption_daily, meter_alerts)
