"""Reconstructing many aggregates with two queries instead of one or two per aggregate.

Used to warm the group committer after a restart, when a polling cycle is about to touch
every meter and account of a site. On PostgreSQL it reads the latest snapshot of each
aggregate and the events after it with ``= ANY(...)``; elsewhere it falls back to the
repository, one aggregate at a time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder
from psycopg.sql import SQL, Identifier

if TYPE_CHECKING:
    from ledger.app import Ledger

CHUNK = 5000


def load_many(ledger: Ledger, ids: Iterable[UUID]) -> dict[UUID, Any]:
    wanted = list(dict.fromkeys(ids))
    recorder = ledger.recorder
    if not isinstance(recorder, PostgresAggregateRecorder) or ledger.snapshots is None:
        found = {}
        for aggregate_id in wanted:
            aggregate = ledger.find(aggregate_id)
            if aggregate is not None:
                found[aggregate_id] = aggregate
        return found
    found: dict[UUID, Any] = {}
    for start in range(0, len(wanted), CHUNK):
        found.update(_load_chunk(ledger, recorder, wanted[start:start + CHUNK]))
    return found


def _load_chunk(ledger: Ledger, recorder: PostgresAggregateRecorder,
                ids: list[UUID]) -> dict[UUID, Any]:
    snapshot_recorder = ledger.snapshots.recorder  # type: ignore[union-attr]
    schema = recorder.datastore.schema
    snapshots_sql = SQL(
        "SELECT DISTINCT ON (originator_id) originator_id, originator_version, topic, state "
        "FROM {schema}.{table} WHERE originator_id = ANY(%s) "
        "ORDER BY originator_id, originator_version DESC").format(
        schema=Identifier(schema), table=Identifier(snapshot_recorder.events_table_name))
    events_sql = SQL(
        "WITH s AS (SELECT originator_id, max(originator_version) AS v FROM {schema}.{snaps} "
        "WHERE originator_id = ANY(%s) GROUP BY originator_id) "
        "SELECT e.originator_id, e.originator_version, e.topic, e.state "
        "FROM {schema}.{table} e LEFT JOIN s ON s.originator_id = e.originator_id "
        "WHERE e.originator_id = ANY(%s) AND e.originator_version > COALESCE(s.v, 0) "
        "ORDER BY e.originator_id, e.originator_version").format(
        schema=Identifier(schema), table=Identifier(recorder.events_table_name),
        snaps=Identifier(snapshot_recorder.events_table_name))
    with recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
        cursor.execute(snapshots_sql, (ids,))
        snapshots = {row["originator_id"]: _stored(row) for row in cursor.fetchall()}
        cursor.execute(events_sql, (ids, ids))
        events: dict[UUID, list[StoredEvent]] = defaultdict(list)
        for row in cursor.fetchall():
            events[row["originator_id"]].append(_stored(row))
    found = {}
    for aggregate_id in ids:
        aggregate = None
        snapshot = snapshots.get(aggregate_id)
        if snapshot is not None:
            aggregate = ledger.mapper.to_domain_event(snapshot).mutate(None)
        for stored in events.get(aggregate_id, ()):
            aggregate = ledger.mapper.to_domain_event(stored).mutate(aggregate)
        if aggregate is not None:
            found[aggregate_id] = aggregate
    return found


def _stored(row: dict) -> StoredEvent:
    return StoredEvent(originator_id=row["originator_id"],
                       originator_version=row["originator_version"], topic=row["topic"],
                       state=bytes(row["state"]))
