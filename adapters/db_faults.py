"""The database connections through an outage: probed without the pools, pools that give
up lost connections quickly (so new ones are made as soon as the database answers), and
refreshed the moment it does."""

from __future__ import annotations

from typing import Any, Callable

import psycopg
import psycopg_pool
from sqlalchemy import text

from ledger.config import Settings
from projections.db import Engines


def event_store_pools(ledger: Any) -> list[Any]:
    """The ``psycopg_pool`` pools behind the ledger's recorders (PostgreSQL only)."""
    pools = []
    for recorder in (ledger.recorder, getattr(ledger.snapshots, "recorder", None)):
        pool = getattr(getattr(recorder, "datastore", None), "pool", None)
        if isinstance(pool, psycopg_pool.ConnectionPool) and \
                all(pool is not known for known in pools):
            pools.append(pool)
    return pools


def tune_pools(ledger: Any, settings: Settings) -> None:
    """A connection attempt gives up after ``PREPAID_DATABASE_CONNECT_TIMEOUT_S``; a pool
    slot lost in an outage is retried for ``PREPAID_DATABASE_RECONNECT_TIMEOUT_S`` and then
    dropped, to be made again on demand. (The pool's own default retries each slot with a
    doubling delay for five minutes: after a 40 s outage the next attempt came ~20 s after
    the database returned, and every write waited for it.)"""
    for pool in event_store_pools(ledger):
        pool.kwargs["connect_timeout"] = settings.database_connect_timeout_s
        pool.reconnect_timeout = settings.database_reconnect_timeout_s


def refresh_pools(ledger: Any, engines: Engines) -> None:
    """The database answers again: replace broken pooled connections now."""
    for pool in event_store_pools(ledger):
        pool.check()
    engines.reader.pool.dispose()
    if engines.writer is not engines.reader:
        engines.writer.pool.dispose()


def probe_for(settings: Settings, engines: Engines) -> Callable[[], None]:
    """Raise unless the database answers a fresh connection (not one from a pool)."""
    if settings.is_postgres:
        url = settings.database_url.replace("postgres://", "postgresql://", 1)

        def probe() -> None:
            with psycopg.connect(url, connect_timeout=settings.database_connect_timeout_s,
                                 autocommit=True) as conn:
                conn.execute("SELECT 1")
        return probe

    def probe_sqlite() -> None:
        with engines.reader.connect() as conn:
            conn.execute(text("SELECT 1"))
    return probe_sqlite
