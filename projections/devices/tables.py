"""The devices' read models: device commands; and the poll results, written directly.

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

from projections.schema import AutoId, Id, UTCDateTime, metadata

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

# The tables the view projects from the log (a rebuild empties them).
VIEW_TABLES = (device_commands,)
