"""What every read-model table is made of: the one ``MetaData`` they are all declared
on, the column types they share, and the projector's own table of positions.

Each feature declares its tables in ``projections/<feature>/tables.py``; the catalogue
(``projections/tables.py``) imports them all, and whoever needs the whole schema
(Alembic, the tests) takes ``metadata`` from there, never from here.

Times are stored as naive UTC (``UTCDateTime``) so that SQLite and PostgreSQL compare and
order them the same way; they come back timezone-aware.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
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
