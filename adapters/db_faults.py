"""The database connections through an outage: probed without the pools, pools that give
up lost connections quickly (so new ones are made as soon as the database answers), and
refreshed the moment it does; and the watch that knows whether it answers."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import psycopg
import psycopg_pool
from sqlalchemy import text

from ledger.config import Settings
from projections.db import Engines

log = logging.getLogger(__name__)


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


class DatabaseWatch:
    """Knows whether the database answers. A failed request starts a background check;
    while the check fails the database is *down* and requests are answered at once; when
    it answers again ``on_return`` runs (the pools are refreshed) and requests go through.
    """

    def __init__(self, probe: Callable[[], None], interval_s: float,
                 on_return: Callable[[], None] = lambda: None) -> None:
        self._probe = probe
        self._interval_s = interval_s
        self._on_return = on_return
        self._lock = threading.Lock()
        self._checking = False
        self.down = False
        self.down_since: float | None = None

    def reachable(self) -> bool:
        """Ask the database now (a fresh connection); update what is known."""
        try:
            self._probe()
        except Exception as error:
            if not self.down:
                log.warning("the database cannot be reached: %s", error)
                self.down, self.down_since = True, time.monotonic()
            self.failed()
            return False
        if self.down:
            self._returned()
        return True

    def failed(self) -> None:
        """A request met a database error: check in the background until it answers."""
        with self._lock:
            if self._checking:
                return
            self._checking = True
        threading.Thread(target=self._check_until_up, name="database-watch",
                         daemon=True).start()

    def _check_until_up(self) -> None:
        try:
            while True:
                try:
                    self._probe()
                except Exception as error:
                    if not self.down:
                        log.warning("the database cannot be reached: %s", error)
                        self.down, self.down_since = True, time.monotonic()
                    time.sleep(self._interval_s)
                    continue
                if self.down:
                    self._returned()
                return
        finally:
            with self._lock:
                self._checking = False

    def _returned(self) -> None:
        outage = time.monotonic() - (self.down_since or time.monotonic())
        try:
            self._on_return()
        except Exception:
            log.exception("refreshing the connection pools failed")
        self.down, self.down_since = False, None
        log.warning("the database answers again after %.1f s", outage)
