"""A hash chain over the event log: tamper evidence for auditors.

Each stored event gets a chain entry whose hash covers the previous entry's hash and the
stored event itself (position, aggregate id, version, topic and the SHA-256 of its state).
Entries are written by the event store's recorder in the same transaction as the events,
while it holds the lock that orders the log, so the chain follows the log exactly. A save
of up to ``LINK_IN_DATABASE_MAX`` events on PostgreSQL has the database link the entries
in the insert statement itself (same hash), so the save is one round trip.

``verify_chain`` recomputes the chain from the first event and reports the first place
where the stored log and the chain disagree: an event changed, deleted, or inserted
behind the platform's back. Keeping the head hash it reports (outside the database)
also catches the removal of the newest events.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError, \
    StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import retry
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier

GENESIS = bytes(32)
PAGE = 5000
# A save of at most this many events links its chain entries in the database, in the
# statement that inserts the events, so that the whole transaction (lock, insert, chain,
# commit) is one round trip. Larger saves (batches of readings) link them here: the
# statement's recursive step costs the database O(n) per entry.
LINK_IN_DATABASE_MAX = 256
BEGIN, COMMIT = SQL("BEGIN"), SQL("COMMIT")


def entry_hash(previous: bytes, position: int, originator_id: UUID | str, version: int,
               topic: str, state: bytes) -> bytes:
    return _link(previous, position, _prepared(originator_id, version, topic, state))


def _prepared(originator_id: UUID | str, version: int, topic: str, state: bytes
              ) -> tuple[str, bytes]:
    """What an entry covers besides its position and the previous hash."""
    aggregate = originator_id if isinstance(originator_id, UUID) else UUID(str(originator_id))
    return f"|{aggregate}|{version}|{topic}|", hashlib.sha256(state).digest()


def _link(previous: bytes, position: int, prepared: tuple[str, bytes]) -> bytes:
    middle, state_digest = prepared
    digest = hashlib.sha256(previous)
    digest.update(f"|{position}{middle}".encode())
    digest.update(state_digest)
    return digest.digest()


def _prepare(stored_events: Sequence[StoredEvent]) -> list[tuple[str, bytes]]:
    return [_prepared(e.originator_id, e.originator_version, e.topic, e.state)
            for e in stored_events]


def _chain(previous: bytes, ids: Sequence[int] | None,
           stored_events: Sequence[StoredEvent],
           prepared: list[tuple[str, bytes]] | None = None) -> list[tuple[int, bytes]]:
    assert ids is not None and len(ids) == len(stored_events)
    if prepared is None:
        prepared = _prepare(stored_events)
    rows = []
    for position, part in sorted(zip(ids, prepared), key=lambda pair: pair[0]):
        previous = _link(previous, position, part)
        rows.append((position, previous))
    return rows


class ChainedPostgresRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: Any, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.chain_table_name = f"{events_table_name}_chain"
        self._heads = threading.local()
        names = dict(schema=Identifier(self.datastore.schema),
                     table=Identifier(self.chain_table_name))
        self.sql_create_statements.append(SQL(
            "CREATE TABLE IF NOT EXISTS {schema}.{table} ("
            "notification_id bigint PRIMARY KEY, hash bytea NOT NULL)").format(**names))
        self.chain_head_statement = SQL(
            "SELECT hash FROM {schema}.{table} ORDER BY notification_id DESC LIMIT 1"
        ).format(**names)
        self.chain_insert_statement = SQL(
            "INSERT INTO {schema}.{table} (notification_id, hash) "
            "SELECT * FROM unnest(%b::bigint[], %b::bytea[])").format(**names)
        # The events as four plain arrays rather than one array of a composite type,
        # sent in binary (``%b``): a composite array, or any array sent as text, is built
        # and escaped in Python element by element (about ten times the CPU of binary
        # arrays, where each state goes as it is).
        self.columns_insert_statement = SQL(
            "INSERT INTO {schema}.{events} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id").format(
                schema=Identifier(self.datastore.schema),
                events=Identifier(self.events_table_name),
                id_type=Identifier(self.datastore.originator_id_type))
        # Insert the events and their chain entries in one statement. Each entry's own
        # share (``_prepared``: the text between position and state digest, and the
        # state's SHA-256) comes from Python; the database links them in position order to
        # the head it reads after the lock is taken, with the hash ``_link`` computes:
        # sha256(previous || '|' || position || middle || state digest).
        self.chained_insert_statement = SQL(
            "WITH RECURSIVE inserted AS ("
            " INSERT INTO {schema}.{events} (originator_id, originator_version, topic, state)"
            " SELECT * FROM unnest(%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[])"
            " RETURNING notification_id, originator_id, originator_version),"
            " parts AS (SELECT * FROM unnest(%b::{id_type}[], %b::bigint[], %b::text[],"
            " %b::bytea[]) AS p(originator_id, originator_version, middle, digest)),"
            " numbered AS (SELECT row_number() OVER (ORDER BY i.notification_id) AS n,"
            " i.notification_id, p.middle, p.digest FROM inserted i JOIN parts p"
            " ON p.originator_id = i.originator_id"
            " AND p.originator_version = i.originator_version),"
            " links (n, notification_id, hash) AS ("
            " SELECT 0::bigint, 0::bigint, coalesce((SELECT hash FROM {schema}.{table}"
            " ORDER BY notification_id DESC LIMIT 1), %b::bytea)"
            " UNION ALL SELECT m.n, m.notification_id, sha256(l.hash"
            " || convert_to('|' || m.notification_id::text || m.middle, 'UTF8') || m.digest)"
            " FROM links l JOIN numbered m ON m.n = l.n + 1),"
            " chained AS (INSERT INTO {schema}.{table} (notification_id, hash)"
            " SELECT notification_id, hash FROM links WHERE n > 0)"
            " SELECT notification_id FROM inserted ORDER BY notification_id").format(
                schema=Identifier(self.datastore.schema),
                events=Identifier(self.events_table_name),
                table=Identifier(self.chain_table_name),
                id_type=Identifier(self.datastore.originator_id_type))
        self.chain_select_statement = SQL(
            "SELECT notification_id, hash FROM {schema}.{table} WHERE notification_id > %s "
            "ORDER BY notification_id LIMIT %s").format(**names)

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any
                      ) -> Sequence[int] | None:
        if not stored_events or len(stored_events) > LINK_IN_DATABASE_MAX or \
                self.datastore.enable_db_functions:
            return super().insert_events(stored_events, **kwargs)
        return self._insert_linked(stored_events)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _insert_linked(self, stored_events: Sequence[StoredEvent]) -> Sequence[int]:
        # One round trip: BEGIN, the lock, NOTIFY, the events with their chain entries,
        # COMMIT, all sent in one pipeline. The lock is held only while the database
        # works (and flushes the commit): never while this process waits for the
        # interpreter lock between two round trips.
        prepared = _prepare(stored_events)
        params = ([e.originator_id for e in stored_events],
                  [e.originator_version for e in stored_events],
                  [e.topic for e in stored_events],
                  [e.state for e in stored_events],
                  [e.originator_id for e in stored_events],
                  [e.originator_version for e in stored_events],
                  [middle for middle, _ in prepared],
                  [digest for _, digest in prepared],
                  GENESIS)
        failed: Exception | None = None
        ids: list[int] = []
        with self.datastore.get_connection() as conn:
            with conn.pipeline() as pipeline:
                try:
                    with conn.cursor() as curs, conn.cursor() as inserting:
                        curs.execute(BEGIN)  # the pool's connections are autocommit
                        self._lock_table(curs)
                        self._notify_channel(curs)
                        inserting.execute(self.chained_insert_statement, params, prepare=True,
                                          binary=True)
                        curs.execute(COMMIT)
                        pipeline.sync()
                        ids = [row["notification_id"] for row in inserting.fetchall()]
                except Exception as error:  # re-raised once the pipeline is closed
                    failed = error
            if failed is not None:
                try:
                    conn.rollback()  # nothing of it stays: the COMMIT was not reached
                except Exception:  # a broken connection: the pool replaces it
                    pass
                raise failed
        if len(ids) != len(stored_events):  # cannot happen; if it did, the batch is done
            # again one by one, and each command answered from what was stored
            raise IntegrityError(f"stored {len(ids)} of {len(stored_events)} events")
        return ids

    def _insert_stored_events(self, curs: Any, stored_events: Sequence[StoredEvent],
                              **kwargs: Any) -> None:
        # As the parent does, plus: ask for the chain's head right after taking the lock.
        # In pipeline mode the answer arrives with the insert's, so it costs no extra
        # round trip while the lock is held. Each event's own share of its chain entry
        # (the SHA-256 of the bytes stored) is computed before the lock is taken; only
        # the links to the previous entry wait for the positions.
        self._heads.prepared = _prepare(stored_events)
        self._lock_table(curs)
        self._notify_channel(curs)
        head = curs.connection.cursor()
        head.execute(self.chain_head_statement, prepare=True)
        self._heads.cursor = head
        curs.execute(self.columns_insert_statement,
                     ([e.originator_id for e in stored_events],
                      [e.originator_version for e in stored_events],
                      [e.topic for e in stored_events],
                      [e.state for e in stored_events]), prepare=True, binary=True)

    def _fetch_ids_after_insert_events(self, curs: Any, stored_events: Sequence[StoredEvent],
                                       **kwargs: Any) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        # Still inside the transaction that holds the table lock: nobody else appends.
        head_cursor = self._heads.cursor
        self._heads.cursor = None
        with head_cursor:
            head = head_cursor.fetchone()
            rows = _chain(bytes(head["hash"]) if head else GENESIS, ids, stored_events,
                          self._heads.prepared)
            head_cursor.execute(self.chain_insert_statement,
                                ([position for position, _ in rows],
                                 [digest for _, digest in rows]), prepare=True)
        return ids

    def chain_entries(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.chain_select_statement, (after, limit))
            return [(row["notification_id"], bytes(row["hash"])) for row in curs.fetchall()]


class ChainedSQLiteRecorder(SQLiteApplicationRecorder):
    def __init__(self, datastore: Any, events_table_name: str = "stored_events") -> None:
        self.chain_table_name = f"{events_table_name}_chain"
        super().__init__(datastore, events_table_name)

    def construct_create_table_statements(self) -> list[str]:
        return super().construct_create_table_statements() + [
            f"CREATE TABLE IF NOT EXISTS {self.chain_table_name} ("
            "notification_id INTEGER PRIMARY KEY, hash BLOB NOT NULL)"]

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent],
                       **kwargs: Any) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        if stored_events:
            c.execute(f"SELECT hash FROM {self.chain_table_name} "
                      "ORDER BY notification_id DESC LIMIT 1")
            head = c.fetchone()
            rows = _chain(bytes(head[0]) if head else GENESIS, ids, stored_events)
            c.executemany(f"INSERT INTO {self.chain_table_name} (notification_id, hash) "
                          "VALUES (?, ?)", rows)
        return ids

    def chain_entries(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT notification_id, hash FROM {self.chain_table_name} "
                      "WHERE notification_id > ? ORDER BY notification_id LIMIT ?",
                      (after, limit))
            return [(row[0], bytes(row[1])) for row in c.fetchall()]


def _events(recorder: Any, page: int) -> Iterator[Any]:
    after = 0
    while True:
        batch = recorder.select_notifications(after, page, inclusive_of_start=False)
        yield from batch
        if len(batch) < page:
            return
        after = batch[-1].id


def _entries(recorder: Any, page: int) -> Iterator[tuple[int, bytes]]:
    after = 0
    while True:
        batch = recorder.chain_entries(after, page)
        yield from batch
        if len(batch) < page:
            return
        after = batch[-1][0]


def verify_chain(recorder: Any, page: int = PAGE,
                 anchor: tuple[int, str] | None = None) -> dict[str, Any]:
    """Recompute the chain over the whole log; stop at the first disagreement.

    ``anchor`` is a (position, hash) an auditor kept from an earlier verification: the
    answer's ``anchor_matches`` says whether the chain still holds it.
    """
    if not hasattr(recorder, "chain_entries"):
        raise RuntimeError("this event store keeps no hash chain")
    events, entries = _events(recorder, page), _entries(recorder, page)
    event, entry = next(events, None), next(entries, None)
    previous, checked, last = GENESIS, 0, 0
    anchored: bool | None = None if anchor is None else False

    def broken(position: int, reason: str) -> dict[str, Any]:
        return {"ok": False, "checked": checked,
                "first_break": {"position": position, "reason": reason,
                                "after_position": last},
                "head": None, **({} if anchor is None else {"anchor_matches": anchored})}

    while event is not None or entry is not None:
        if entry is None or (event is not None and event.id < entry[0]):
            return broken(event.id, "event has no chain entry: inserted outside the platform")
        if event is None or entry[0] < event.id:
            return broken(entry[0], "chain entry has no event: the event was deleted")
        expected = entry_hash(previous, event.id, event.originator_id,
                              event.originator_version, event.topic, event.state)
        if expected != entry[1]:
            return broken(event.id, "hash differs: the event, or an earlier one, was "
                                    "changed or removed")
        previous, last, checked = expected, event.id, checked + 1
        if anchor is not None and last == anchor[0]:
            anchored = previous.hex() == anchor[1].lower()
        event, entry = next(events, None), next(entries, None)
    result = {"ok": True, "checked": checked, "first_break": None,
              "head": {"position": last, "hash": previous.hex()}}
    if anchor is not None:
        result["anchor_matches"] = anchored
        result["ok"] = bool(anchored)
    return result
