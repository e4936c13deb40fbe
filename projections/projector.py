"""Catch-up processing of the event log into SQL read models, exactly once.

A processor reads notifications after its recorded position (``notification_id > last``;
gaps in the ids are allowed, PostgreSQL sequences skip numbers on rollback), hands each
decoded event to its view, and writes the view's rows *and* its new position in one SQL
transaction. A crash anywhere in a batch rolls both back, so the batch is simply done
again on restart: no row is written twice and none is lost.

The event store inserts under a table lock (``POSTGRES_ENABLE_DB_FUNCTIONS`` is never
enabled), so notifications become visible in id order and a reader cannot pass over one
that commits later with a smaller id.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from eventsourcing.application import Application
from sqlalchemy import Connection, Table, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from projections.db import Engines
from projections.tables import projection_positions

log = logging.getLogger(__name__)


class View(Protocol):
    """A read model: turns one batch of events into rows."""

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
        self._lock = threading.Lock()
        self._known_position = 0

    def position(self) -> int:
        with self.engines.reader.connect() as conn:
            found = conn.execute(select(projection_positions.c.position).where(
                projection_positions.c.name == self.name)).scalar()
        return found or 0

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
        with self._lock:
            while True:
                count, position = self._process_batch()
                applied += count
                self._known_position = position
                if on_batch is not None and count:
                    on_batch(count)
                if count == 0 or (until is not None and position >= until):
                    return applied

    def _process_batch(self) -> tuple[int, int]:
        with self.engines.writer.begin() as conn:
            position = self._lock_position(conn)
            notifications = self.app.recorder.select_notifications(
                start=position, limit=self.batch_size, inclusive_of_start=False)
            if not notifications:
                return 0, position
            events = [(n.id, self.app.mapper.to_domain_event(n)) for n in notifications]
            for view in self.views:
                view.apply_batch(conn, events)
            last = notifications[-1].id
            conn.execute(update(projection_positions)
                         .where(projection_positions.c.name == self.name)
                         .values(position=last))
            return len(events), last

    def _lock_position(self, conn: Connection) -> int:
        """Read the position under a lock that other processors wait on until we commit."""
        make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        # Two processors starting together must not both create the row.
        conn.execute(make(projection_positions).values(name=self.name, position=0)
                     .on_conflict_do_nothing(index_elements=["name"]))
        query = select(projection_positions.c.position).where(
            projection_positions.c.name == self.name)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        found = conn.execute(query).scalar()
        assert found is not None
        return found

    def rebuild(self, on_batch: Callable[[int], None] | None = None) -> int:
        """Forget everything this view wrote and apply the whole log from event zero
        (``on_batch(count)`` after each batch: progress)."""
        with self._lock:
            with self.engines.writer.begin() as conn:
                for view in self.views:
                    for table in view.tables:
                        conn.execute(delete(table))
                conn.execute(delete(projection_positions).where(
                    projection_positions.c.name == self.name))
            self._known_position = 0
        return self.catch_up(on_batch=on_batch)


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
