"""A named position in the event log, and reading the log after it: the one mechanism the
projector (read models) and the processes (enforcement, alerts) follow the log with."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from projections.db import Engines
from projections.schema import projection_positions


class TrackedPosition:
    """The last notification id a follower has handled, in ``projection_positions``."""

    def __init__(self, engines: Engines, name: str) -> None:
        self.engines = engines
        self.name = name

    def read(self) -> int:
        with self.engines.reader.connect() as conn:
            found = conn.execute(select(projection_positions.c.position).where(
                projection_positions.c.name == self.name)).scalar()
        return found or 0

    def lock(self, conn: Connection) -> int:
        """Read the position under a lock that other followers wait on until we commit."""
        self._ensure(conn)
        query = select(projection_positions.c.position).where(
            projection_positions.c.name == self.name)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        found = conn.execute(query).scalar()
        assert found is not None
        return found

    def advance(self, conn: Connection, position: int) -> None:
        """Move the position on to ``position`` (never back), in the caller's transaction."""
        conn.execute(update(projection_positions)
                     .where(projection_positions.c.name == self.name,
                            projection_positions.c.position < position)
                     .values(position=position))

    def save(self, position: int) -> None:
        """Move the position on in a transaction of its own."""
        with self.engines.writer.begin() as conn:
            self._ensure(conn)
            self.advance(conn, position)

    def _ensure(self, conn: Connection) -> None:
        # Two followers starting together must not both create the row.
        make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        conn.execute(make(projection_positions).values(name=self.name, position=0)
                     .on_conflict_do_nothing(index_elements=["name"]))


def events_after(app: Any, position: int, limit: int) -> tuple[list[Any], list[tuple[int, Any]]]:
    """The next ``limit`` notifications after ``position`` and their decoded events."""
    notifications = app.recorder.select_notifications(start=position, limit=limit,
                                                      inclusive_of_start=False)
    return notifications, [(n.id, app.mapper.to_domain_event(n)) for n in notifications]


class ReadAhead:
    """Reads and decodes the batch after a position on a thread of its own, to be taken
    by the next transaction if the position it locks is that one. ``then(events)``, if
    given, runs on that thread too, after decoding, and its result is taken with the
    batch (work that needs the events but not the database)."""

    def __init__(self, app: Any, limit: int,
                 then: Callable[[list[tuple[int, Any]]], Any] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.then = then
        self._position: int | None = None
        self._thread: threading.Thread | None = None
        self._result: tuple[list[Any], list[tuple[int, Any]], Any] | None = None
        self._error: BaseException | None = None

    def start(self, position: int) -> None:
        self.cancel()
        self._position, self._result, self._error = position, None, None
        self._thread = threading.Thread(target=self._read, name="read-ahead", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            notifications, events = events_after(self.app, self._position, self.limit)
            extra = self.then(events) if self.then is not None and events else None
            self._result = notifications, events, extra
        except BaseException as error:  # handed to the caller by ``take``
            self._error = error

    def take(self, position: int) -> tuple[list[Any], list[tuple[int, Any]], Any] | None:
        """The batch read after ``position`` (notifications, events, what ``then`` gave);
        None when none was read from there or it was empty (the log may have grown
        since: read it again)."""
        if self._thread is None:
            return None
        self._thread.join()
        self._thread = None
        if self._position != position:
            return None
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        result, self._result = self._result, None
        return result if result and result[0] else None

    def cancel(self) -> None:
        """Wait for a read under way and drop it."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._result = self._error = None
