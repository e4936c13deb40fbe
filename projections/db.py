"""SQLAlchemy engines for the read models, on the same database as the event store."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy import Engine, create_engine, event, text

from ledger.config import Settings

SQLITE_BUSY_TIMEOUT_S = 30


@dataclass
class Engines:
    """``reader`` serves queries; ``writer`` is used by projection processors.

    On SQLite the writer opens every transaction with ``BEGIN IMMEDIATE`` so that two
    processors (two processes on one file) serialise on the write lock up front instead
    of failing to upgrade a read snapshot mid-batch. PostgreSQL needs no such split: the
    processor locks its position row with ``SELECT ... FOR UPDATE``.
    """

    reader: Engine
    writer: Engine

    def dispose(self) -> None:
        self.reader.dispose()
        if self.writer is not self.reader:
            self.writer.dispose()


def make_engines(settings: Settings) -> Engines:
    if settings.is_sqlite:
        path = settings.sqlite_path
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return Engines(_sqlite_engine(settings, immediate=False),
                       _sqlite_engine(settings, immediate=True))
    connect_args = {}
    if settings.database_schema:
        connect_args["options"] = f"-csearch_path={settings.database_schema}"
    engine = create_engine(settings.sqlalchemy_url, connect_args=connect_args,
                           pool_size=settings.postgres_pool_size,
                           max_overflow=settings.postgres_pool_size, pool_pre_ping=True)
    return Engines(engine, engine)


def _sqlite_engine(settings: Settings, *, immediate: bool) -> Engine:
    engine = create_engine(settings.sqlalchemy_url,
                           connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S,
                                         "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def prepare_database(settings: Settings) -> None:
    """Create the SQLite file's folder, or the PostgreSQL schema named by
    ``PREPAID_DATABASE_SCHEMA``, if missing."""
    if settings.is_sqlite and settings.sqlite_path != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(settings.sqlite_path)), exist_ok=True)
    if not (settings.is_postgres and settings.database_schema):
        return
    engine = create_engine(settings.sqlalchemy_url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{settings.database_schema}"'))
    engine.dispose()
