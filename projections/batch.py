"""A batch of read-model rows kept in memory until a view writes them.

Rows created in the batch take later changes in place; changes to older rows are grouped
into one statement per table and set of columns (a row is found by its ``id``). The
views of ``metering``, ``devices``, ``payments``, ``property`` and ``alerts`` each keep
one per batch of events, with what else they gather beside it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Table

from projections.bulk import insert_rows, update_rows


class RowBatch:
    def __init__(self) -> None:
        self.new: dict[Table, dict[str, dict]] = defaultdict(dict)
        self.changes: dict[tuple[Table, tuple[str, ...]], dict[str, dict]] = defaultdict(dict)

    def gather(self, events: Iterable[tuple[int, Any]],
               handlers: Mapping[type, Callable[[Any, int, Any], None]]) -> None:
        """Hand each event to its type's handler (events of other types are not this
        view's), which records its rows in this batch."""
        for position, event in events:
            handler = handlers.get(type(event))
            if handler is not None:
                handler(self, position, event)

    def create(self, table: Table, key: str, row: dict) -> None:
        self.new[table][key] = row

    def change(self, table: Table, key: str, **values: Any) -> None:
        pending = self.new[table].get(key)
        if pending is not None:
            pending.update(values)
            return
        columns = tuple(sorted(values))
        self.changes[(table, columns)].setdefault(key, {}).update(values)

    def insert_new(self, conn: Connection) -> None:
        """One multi-row insert per table of the rows created in the batch."""
        for table, rows in self.new.items():
            insert_rows(conn, table, list(rows.values()))

    def apply_changes(self, conn: Connection) -> None:
        """One UPDATE per table and set of columns of the changes to older rows (an
        executemany on SQLite)."""
        for (table, _), rows in self.changes.items():
            update_rows(conn, table, "id", rows)
