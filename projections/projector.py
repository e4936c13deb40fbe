"""Catch-up processing of the event log into SQL read models, exactly once.

A processor reads notifications after its recorded position (``notification_id > last``;
gaps in the ids are allowed, PostgreSQL sequences skip numbers on rollback), hands each
decoded event to its view, and writes the view's rows *and* its new position in one SQL
transaction. A crash anywhere in a batch rolls both back, so the batch is simply done
again on restart: no row is written twice and none is lost.

The event store inserts under a table lock (``POSTGRES_ENABLE_DB_FUNCTIONS`` is never
enabled), so notifications become visible in id order and a reader cannot pass over one
that commits later with a smaller id. That also makes reading ahead safe: while one full
batch is written, the next is read and decoded on another thread (on PostgreSQL, where
the writes wait for the server), and used if the position is still where that batch
ended when the next transaction locks it (another process may have moved it meanwhile).

On PostgreSQL a batch commits without waiting for its flush to disk
(``synchronous_commit = off`` for that transaction only): the rows are derived from the
log, and the position moves in the same transaction, so a batch the server loses in a
crash loses its position with it and is simply applied again; nothing acknowledged to
anyone depends on it. The event store's own writes keep the synchronous commit.

A rebuild on PostgreSQL empties the views' tables with one ``TRUNCATE`` and writes the
whole log without their secondary indexes (the non-unique ones: the views read their own
rows by primary key only, and upserts need only the unique ones), then builds each index
once from the finished table, which costs the server far less than keeping it current
row by row. An index a rebuild interrupted by a crash did not put back is created again
the next time the platform starts (``restore_indexes``) or rebuilds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from eventsourcing.application import Application
from sqlalchemy import Connection, Index, Table, delete, text

from projections.db import Engines
from projections.schema import projection_positions
from projections.tracking import ReadAhead, TrackedPosition, events_after

log = logging.getLogger(__name__)


class View(Protocol):
    """A read model: turns one batch of events into rows.

    A view may also have ``prepare(events)``: everything ``apply_batch`` works out from
    the events alone, without the database, returned as the function that writes it
    (``write(conn)``; ``apply_batch(conn, events)`` is then ``prepare(events)(conn)``).
    While one batch is written, the projector prepares the next on the read-ahead thread,
    so its Python runs while the server works on the writes before it.
    """

    name: str
    tables: tuple[Table, ...]

    def apply_batch(self, conn: Connection, events: list[tuple[int, Any]]) -> None: ...


class Projector:
    """Applies the log to one or more views, decoding each event once; the views share
    one position and one transaction per batch."""

    def __init__(self, app: Application, engines: Engines, views: Sequence[View], *,
                 name: str = "read-models", batch_size: int = 1000) -> None:
        self.app = app
        self.engines = engines
        self.views = list(views)
        self.name = name
        self.batch_size = batch_size
        self.tracking = TrackedPosition(engines, name)
        self._lock = threading.Lock()
        self._known_position = 0
        self._postgres = engines.writer.dialect.name == "postgresql"
        self._preparers = [getattr(view, "prepare", None) for view in self.views]

    def _prepare(self, events: list[tuple[int, Any]]) -> list[Any]:
        """Each view's writes for these events, where the view can work them out alone."""
        return [prepare(events) if prepare is not None else None
                for prepare in self._preparers]

    def position(self) -> int:
        return self.tracking.read()

    def catch_up(self, until: int | None = None,
                 on_batch: Callable[[int], None] | None = None) -> int:
        """Process batches until the log is exhausted (or ``until`` is reached).

        Returns the number of events applied. Safe to call from many threads and from
        many processes at once: each batch holds the position lock while it works.
        """
        if until is not None and until <= self._known_position:
            return 0
        if until is None and (self.app.recorder.max_notification_id() or 0) <= \
                self._known_position:
            return 0  # idle poll: nothing new, no write transaction
        applied = 0
        ahead = ReadAhead(self.app, self.batch_size, self._prepare) if self._postgres \
            else None
        with self._lock:
            try:
                while True:
                    count, position = self._process_batch(until, ahead)
                    applied += count
                    self._known_position = position
                    if on_batch is not None and count:
                        on_batch(count)
                    if count == 0 or (until is not None and position >= until):
                        return applied
            finally:
                if ahead is not None:
                    ahead.cancel()

    def _process_batch(self, until: int | None = None,
                       ahead: ReadAhead | None = None) -> tuple[int, int]:
        with self.engines.writer.begin() as conn:
            if self._postgres:
                conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            position = self.tracking.lock(conn)
            found = ahead.take(position) if ahead is not None else None
            if found is not None:
                notifications, events, writes = found
            else:
                notifications, events = events_after(self.app, position, self.batch_size)
                writes = None
            if not notifications:
                return 0, position
            last = notifications[-1].id
            if ahead is not None and len(notifications) == self.batch_size and \
                    (until is None or last < until):
                ahead.start(last)  # a full batch: more is likely to follow
            for n, view in enumerate(self.views):
                write = writes[n] if writes is not None else None
                if write is not None:
                    write(conn)  # prepared on the read-ahead thread
                else:
                    view.apply_batch(conn, events)
            self.tracking.advance(conn, last)
            return len(events), last

    def rebuild(self, on_batch: Callable[[int], None] | None = None) -> int:
        """Forget everything this view wrote and apply the whole log from event zero
        (``on_batch(count)`` after each batch: progress)."""
        deferred = self.deferred_indexes()
        with self._lock:
            with self.engines.writer.begin() as conn:
                if self._postgres:
                    quote = conn.dialect.identifier_preparer.format_table
                    conn.exec_driver_sql("TRUNCATE " + ", ".join(
                        quote(table) for table in self._tables()))
                    for index in deferred:  # one an interrupted rebuild left out: none
                        index.drop(conn, checkfirst=True)
                else:
                    for table in self._tables():
                        conn.execute(delete(table))
                conn.execute(delete(projection_positions).where(
                    projection_positions.c.name == self.name))
            self._known_position = 0
        try:
            return self.catch_up(on_batch=on_batch)
        finally:
            if deferred:
                with self.engines.writer.begin() as conn:
                    self._create_missing(conn, deferred)

    def _tables(self) -> list[Table]:
        return [table for view in self.views for table in view.tables]

    def deferred_indexes(self) -> list[Index]:
        """The secondary indexes a rebuild drops and builds again at its end (PostgreSQL
        only; none on SQLite)."""
        if not self._postgres:
            return []
        return sorted((index for table in self._tables() for index in table.indexes
                       if not index.unique), key=lambda index: index.name)

    def restore_indexes(self) -> list[str]:
        """Create any deferred index that is missing (a rebuild stopped before its end);
        the names of those created."""
        deferred = self.deferred_indexes()
        if not deferred:
            return []
        with self.engines.writer.begin() as conn:
            created = self._create_missing(conn, deferred)
        for name in created:
            log.warning("read-model index %s was missing (a rebuild did not finish): "
                        "created", name)
        return created

    @staticmethod
    def _create_missing(conn: Connection, indexes: list[Index]) -> list[str]:
        present = set(conn.execute(text(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")).scalars())
        missing = [index for index in indexes if index.name not in present]
        for index in missing:
            index.create(conn)
        return [index.name for index in missing]


class PollingRunner:
    """Keeps projectors current from a background thread by polling the notification log.

    ``eventsourcing``'s SQLite recorder cannot subscribe, so polling is the one mechanism
    that works on both databases; a write through this process also catches up at once.
    """

    def __init__(self, projectors: list[Projector], interval_s: float) -> None:
        self.projectors = projectors
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="projections", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            for projector in self.projectors:
                try:
                    projector.catch_up()
                except Exception:  # keep polling; the failed batch rolled back whole
                    log.exception("projection %s failed; will retry", projector.name)
            self._stop.wait(self.interval_s)
