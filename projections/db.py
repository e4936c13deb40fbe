"""SQLAlchemy engines for the read models, on the same database as the event store."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass

from sqlalchemy import Engine, create_engine, event, text

from ledger.config import Settings

SQLITE_BUSY_TIMEOUT_S = 30
# The database holds password hashes and, unless PREPAID_JWT_SECRET_FILE is set, the key
# that signs access tokens: only its owner may read it.
SQLITE_DIR_MODE = 0o700
SQLITE_FILE_MODE = 0o600
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")

log = logging.getLogger(__name__)


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
        secure_sqlite_file(settings.sqlite_path)
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
    if settings.is_sqlite:
        secure_sqlite_file(settings.sqlite_path)
    if not (settings.is_postgres and settings.database_schema):
        return
    engine = create_engine(settings.sqlalchemy_url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{settings.database_schema}"'))
    engine.dispose()


def secure_sqlite_file(path: str) -> None:
    """Make the SQLite file (and its folder, if missing) readable by its owner only.

    The file is created 0600 before SQLite first opens it; SQLite gives its -wal and -shm
    files the database file's mode. A folder made here is 0700; an existing one is left
    as it is, with a warning when other users may write to it (and so swap the file).
    Files left readable by an older version are narrowed to 0600.
    """
    if path == ":memory:" or path.startswith("file:"):
        return
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=SQLITE_DIR_MODE, exist_ok=True)
        os.chmod(folder, SQLITE_DIR_MODE)  # whatever the umask
    elif os.stat(folder).st_mode & (stat.S_IWGRP | stat.S_IWOTH) \
            and not os.stat(folder).st_mode & stat.S_ISVTX:
        log.warning("SECURITY: other users may write to %s, which holds the database: "
                    "they can replace it (chmod 700 %s)", folder, folder)
    if not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, SQLITE_FILE_MODE))
    for name in (path, *(path + side for side in SQLITE_SIDE_FILES)):
        try:
            mode = stat.S_IMODE(os.stat(name).st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            try:
                os.chmod(name, mode & 0o700 | stat.S_IRUSR | stat.S_IWUSR)
            except OSError as error:
                log.warning("SECURITY: %s is readable by other users and could not be "
                            "narrowed to 0600: %s", name, error)
