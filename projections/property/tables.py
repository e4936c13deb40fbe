"""The property read model: each account's property-fee schedule.

Alembic (``migrations/``) creates them; this is their shape.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    Table,
)

from projections.schema import Id, metadata

property_fee_schedules = Table(
    "property_fee_schedules", metadata,
    Column("account_id", Id, primary_key=True),
    Column("day_of_month", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),
)

# The tables the view projects from the log (a rebuild empties them).
VIEW_TABLES = (property_fee_schedules,)
