"""Writing a batch of read-model rows in a few statements.

SQLAlchemy's ``execute(insert(table), rows)`` on psycopg sends one INSERT per row (in a
pipeline, but still a statement, a round of parameter binding and a result per row): in
a rebuild that was most of the time. On PostgreSQL these helpers send the whole batch at
once instead: new rows with one ``COPY`` per table, additive upserts as one
``INSERT ... SELECT FROM unnest(...)`` with an array per column, changes to rows already
there as one ``UPDATE ... FROM unnest(...)``. COPY goes in binary when every value is
of its column's plain type (aware times as the instants they are); otherwise, and for
the arrays, values go through each column type's own bind processing first
(``UTCDateTime`` turns aware times into naive UTC). Either way the rows stored are the
ones ``insert()`` would have stored. Elsewhere (SQLite) they fall back to SQLAlchemy's
executemany.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from projections.schema import UTCDateTime

_Processors = list[Callable[[Any], Any] | None]
_cache: dict[tuple[int, str, tuple[str, ...]], tuple[_Processors, list[str]]] = {}


def _columns(conn: Connection, table: Table, names: tuple[str, ...]
             ) -> tuple[_Processors, list[str]]:
    """Each column's bind processor and its PostgreSQL type name (cached per table)."""
    key = (id(table), conn.dialect.name, names)
    found = _cache.get(key)
    if found is None:
        dialect = conn.dialect
        processors = [table.c[name].type.bind_processor(dialect) for name in names]
        types = [table.c[name].type.compile(dialect=dialect) for name in names]
        found = _cache[key] = (processors, types)
    return found


def _values(processors: _Processors, names: tuple[str, ...],
            rows: Sequence[dict]) -> list[tuple]:
    if not any(processors):
        return list(zip(*([row[name] for row in rows] for name in names)))
    # Column by column: one ``map`` per processed column instead of a generator per row.
    columns = [list(map(process, [row[name] for row in rows])) if process else
               [row[name] for row in rows] for name, process in zip(names, processors)]
    return list(zip(*columns))


def _groups(rows: Sequence[dict]) -> dict[tuple[str, ...], list[dict]]:
    """Rows by the columns they give (a column left out keeps its default), in order
    within each group."""
    groups: dict[tuple[str, ...], list[dict]] = {}
    last_keys, last_group = None, None
    for row in rows:
        keys = row.keys()
        if keys != last_keys:  # rows built alike come in runs: sort their keys once
            last_keys, last_group = keys, groups.setdefault(tuple(sorted(row)), [])
        last_group.append(row)
    return groups


def _qualified(conn: Connection, table: Table) -> str:
    preparer = conn.dialect.identifier_preparer
    return preparer.format_table(table)


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict]) -> None:
    """INSERT these rows (in order), as ``conn.execute(insert(table), rows)`` would."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        for group in _groups(rows).values():
            conn.execute(table.insert(), group)
        return
    quote = conn.dialect.identifier_preparer.quote
    cursor = conn.connection.driver_connection.cursor()  # same transaction as ``conn``
    for names, group in _groups(rows).items():
        target = f"COPY {_qualified(conn, table)} ({', '.join(quote(n) for n in names)})"
        binary = _binary_columns(conn, table, names)
        columns = [[row[name] for row in group] for name in names] if binary else None
        if binary and all(_fits(column, kind) for column, (_, kind) in zip(columns, binary)):
            # Binary: psycopg formats a row in C about 8x faster than as text, and an
            # aware time goes as the instant it is (a timestamptz's binary form is the
            # UTC microseconds a timestamp column stores), whatever its offset.
            with cursor.copy(f"{target} FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types([name for name, _ in binary])
                for values in zip(*columns):
                    copy.write_row(values)
            continue
        processors, _ = _columns(conn, table, names)
        with cursor.copy(f"{target} FROM STDIN") as copy:
            for values in _values(processors, names, group):
                copy.write_row(values)


# Column types COPY may send in binary: PostgreSQL's binary type, the Python type it takes.
_BINARY_OF = {"BIGINT": ("int8", int), "INTEGER": ("int4", int), "BOOLEAN": ("bool", bool),
              "TEXT": ("text", str)}
_binary_cache: dict[tuple[int, tuple[str, ...]], list[tuple[str, type]] | None] = {}


def _binary_columns(conn: Connection, table: Table, names: tuple[str, ...]
                    ) -> list[tuple[str, type]] | None:
    """Each column's binary type and the Python type its values must have; None when a
    column has a type or a bind processing that binary COPY does not cover."""
    key = (id(table), names)
    if key not in _binary_cache:
        processors, types = _columns(conn, table, names)
        found: list[tuple[str, type]] | None = []
        for name, process, compiled in zip(names, processors, types):
            if isinstance(table.c[name].type, UTCDateTime):
                found.append(("timestamptz", datetime))
            elif process is None and compiled.startswith("VARCHAR"):
                found.append(("text", str))
            elif process is None and compiled in _BINARY_OF:
                found.append(_BINARY_OF[compiled])
            else:
                found = None
                break
        _binary_cache[key] = found
    return _binary_cache[key]


def _fits(values: list, kind: type) -> bool:
    """Whether every value is None or of the column's Python type (a subclass of str for
    text; exactly int or bool otherwise, bool being an int), and every time is aware:
    anything else goes the text way, with the column's bind processing."""
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if kind is str:
        return all(issubclass(k, str) for k in kinds)
    if kind is datetime:
        return kinds <= {datetime} and None not in {v.tzinfo for v in values if v is not None}
    return kinds <= {kind}


def upsert_add(conn: Connection, table: Table, rows: list[dict], keys: list[str],
               sums: list[str]) -> None:
    """Insert rows, or add their sums to the rows already there (one statement).

    The rows' keys must be distinct (callers accumulate per key first)."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        statement = sqlite_insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=keys,
            set_={name: table.c[name] + statement.excluded[name] for name in sums})
        conn.execute(statement, rows)
        return
    quote = conn.dialect.identifier_preparer.quote
    name = _qualified(conn, table)
    updates = ", ".join(f"{quote(s)} = {name}.{quote(s)} + excluded.{quote(s)}" for s in sums)
    _unnest(conn, table, rows, f"ON CONFLICT ({', '.join(quote(k) for k in keys)}) "
                               f"DO UPDATE SET {updates}")


def insert_new(conn: Connection, table: Table, rows: list[dict], keys: list[str]) -> None:
    """Insert the rows whose keys are not there yet (ON CONFLICT DO NOTHING)."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(sqlite_insert(table).on_conflict_do_nothing(index_elements=keys), rows)
        return
    quote = conn.dialect.identifier_preparer.quote
    _unnest(conn, table, rows, f"ON CONFLICT ({', '.join(quote(k) for k in keys)}) DO NOTHING")


def update_rows(conn: Connection, table: Table, key: str, rows: dict[Any, dict]) -> None:
    """Set the given columns of the rows whose ``key`` column holds each key of ``rows``
    (every row giving the same columns), as one ``UPDATE`` per row would: one statement
    on PostgreSQL. A key that matches no row changes nothing."""
    if not rows:
        return
    names = tuple(next(iter(rows.values())))
    if conn.dialect.name != "postgresql":
        statement = table.update().where(table.c[key] == bindparam("b_key")).values(
            {name: bindparam(f"b_{name}") for name in names})
        conn.execute(statement, [{"b_key": k, **{f"b_{n}": v for n, v in row.items()}}
                                 for k, row in rows.items()])
        return
    quote = conn.dialect.identifier_preparer.quote
    processors, types = _columns(conn, table, (key, *names))
    columns = [list(rows)] + [[row[name] for row in rows.values()] for name in names]
    arrays = ", ".join(f"%b::{t}[]" for t in types)  # binary: no escaping in Python
    names_sql = ", ".join(quote(n) for n in (key, *names))
    changes = ", ".join(f"{quote(n)} = v.{quote(n)}" for n in names)
    cursor = conn.connection.driver_connection.cursor()  # same transaction as ``conn``
    cursor.execute(
        f"UPDATE {_qualified(conn, table)} AS t SET {changes} FROM unnest({arrays}) "
        f"AS v({names_sql}) WHERE t.{quote(key)} = v.{quote(key)}",
        [list(map(process, column)) if process else column
         for process, column in zip(processors, columns)])


def _unnest(conn: Connection, table: Table, rows: list[dict], on_conflict: str) -> None:
    quote = conn.dialect.identifier_preparer.quote
    cursor = conn.connection.driver_connection.cursor()  # same transaction as ``conn``
    for names, group in _groups(rows).items():
        processors, types = _columns(conn, table, names)
        values = _values(processors, names, group)
        columns = ", ".join(quote(n) for n in names)
        arrays = ", ".join(f"%b::{t}[]" for t in types)  # binary: no escaping in Python
        cursor.execute(
            f"INSERT INTO {_qualified(conn, table)} ({columns}) SELECT * FROM unnest({arrays}) "
            f"{on_conflict}", [list(column) for column in zip(*values)])
