"""Backups, restores and moving a platform to another database.

What a platform *is*: the event log with its hash chain, plus the few tables that are not
projections of it (meter readings, which are too many to be events; login throttling;
the platform's own secrets such as the token signing key; the positions of the process
managers). Operators, API keys, credentials and approvals are events, so they travel
with the log. Every read model is rebuilt from the log on arrival.

* ``backup(settings, file)``: on SQLite, the online backup API (a consistent copy while
  the platform runs). On PostgreSQL, a logical export of the same into a SQLite file: the
  events up to the chain head seen at the start (the table lock makes that a consistent
  prefix), their chain entries, and the operational tables. Either file is itself an
  embedded-site database.
* ``restore(file, settings)`` and ``copy_platform(source, target)``: copy into an *empty*
  database (SQLite or PostgreSQL), keeping every event's position so that the chain
  verifies, then rebuild the read models and check the copy before saying done.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from sqlalchemy import Engine, create_engine, func, select, text

from ledger.config import Settings
from projections.access.tables import login_limits, platform_secrets
from projections.accounts.tables import ledger_totals, wallet_balances
from projections.devices.tables import poll_results
from projections.metering.tables import meter_readings
from projections.schema import projection_positions

# The event store's tables as the ``eventsourcing`` recorders name them.
EVENTS = {"sqlite": "stored_events", "postgresql": "ledger_events"}
CHAIN = {name: f"{table}_chain" for name, table in EVENTS.items()}
PAGE = 2000
# Not projections of the log: copied as rows. Read models are rebuilt instead.
OPERATIONAL_TABLES = (meter_readings, login_limits, platform_secrets, poll_results)
READ_MODEL_PROJECTORS = ("read-models",)

Progress = Callable[..., Any]


class CopyRefused(RuntimeError):
    """The target is not empty, or the source is not a platform."""


class CopyFailed(RuntimeError):
    """The copy was made but does not check out; the message says what differs."""


@dataclass
class CopyReport:
    events: int = 0
    head_position: int = 0
    head_hash: str = ""
    rows: dict[str, int] = field(default_factory=dict)
    wallets: int = 0
    checks: dict[str, bool] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"events": self.events, "head": {"position": self.head_position,
                                                "hash": self.head_hash},
                "rows": self.rows, "wallets": self.wallets, "checks": self.checks}


def _no_progress(label: str, total: int | None = None):
    from contextlib import nullcontext

    return nullcontext(lambda n=1: None)


def _engine(settings: Settings) -> Engine:
    if settings.is_sqlite:
        return create_engine(settings.sqlalchemy_url)
    connect_args = {}
    if settings.database_schema:
        connect_args["options"] = f"-csearch_path={settings.database_schema}"
    return create_engine(settings.sqlalchemy_url, connect_args=connect_args, pool_size=2)


def _store(engine: Engine) -> tuple[str, str, str]:
    """(events table, chain table, position column) of the event store on ``engine``:
    SQLite numbers events by ``rowid``, PostgreSQL by ``notification_id``."""
    dialect = engine.dialect.name
    column = "rowid" if dialect == "sqlite" else "notification_id"
    return EVENTS[dialect], CHAIN[dialect], column


def _head(engine: Engine) -> tuple[int, bytes | None]:
    _, chain, _ = _store(engine)
    with engine.connect() as conn:
        row = conn.execute(text(f"SELECT notification_id, hash FROM {chain} "
                                "ORDER BY notification_id DESC LIMIT 1")).first()
    return (int(row[0]), bytes(row[1])) if row else (0, None)


def _count_events(engine: Engine, until: int | None = None) -> int:
    events, _, column = _store(engine)
    where = f" WHERE {column} <= :until" if until is not None else ""
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {events}{where}"),
                                {"until": until}).scalar() or 0)


def _events(engine: Engine, until: int) -> Iterator[list[tuple]]:
    events, _, column = _store(engine)
    after = 0
    while True:
        with engine.connect() as conn:
            rows = conn.execute(text(
                f"SELECT {column}, originator_id, originator_version, topic, state "
                f"FROM {events} WHERE {column} > :after AND {column} <= :until "
                f"ORDER BY {column} LIMIT :n"), {"after": after, "until": until, "n": PAGE}
            ).all()
        if not rows:
            return
        yield [tuple(row) for row in rows]
        after = rows[-1][0]


def _chain(engine: Engine, until: int) -> Iterator[list[tuple]]:
    _, chain, _ = _store(engine)
    after = 0
    while True:
        with engine.connect() as conn:
            rows = conn.execute(text(
                f"SELECT notification_id, hash FROM {chain} WHERE notification_id > :after "
                "AND notification_id <= :until ORDER BY notification_id LIMIT :n"),
                {"after": after, "until": until, "n": PAGE}).all()
        if not rows:
            return
        yield [(int(r[0]), bytes(r[1])) for r in rows]
        after = rows[-1][0]


def _insert_events(conn, dialect: str, rows: list[tuple]) -> None:
    if dialect == "sqlite":
        params = [{"id": r[0], "o": UUID(str(r[1])).hex, "v": r[2], "t": r[3],
                   "s": bytes(r[4])} for r in rows]
        conn.execute(text(f"INSERT INTO {EVENTS[dialect]} (rowid, originator_id, "
                          "originator_version, topic, state) VALUES (:id, :o, :v, :t, :s)"),
                     params)
    else:
        params = [{"id": r[0], "o": UUID(str(r[1])), "v": r[2], "t": r[3], "s": bytes(r[4])}
                  for r in rows]
        conn.execute(text(f"INSERT INTO {EVENTS[dialect]} (notification_id, originator_id, "
                          "originator_version, topic, state) VALUES (:id, :o, :v, :t, :s)"),
                     params)


def _insert_chain(conn, dialect: str, rows: list[tuple]) -> None:
    conn.execute(text(f"INSERT INTO {CHAIN[dialect]} (notification_id, hash) "
                      "VALUES (:id, :h)"),
                 [{"id": r[0], "h": r[1]} for r in rows])


def _copy_rows(source: Engine, target: Engine, table, progress: Progress) -> int:
    with source.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)
    if not total:
        return 0
    copied = 0
    with progress(f"copying {table.name}", total) as step, source.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=PAGE).execute(
            select(table))
        for chunk in result.partitions(PAGE):
            rows = [dict(row._mapping) for row in chunk]
            if table is poll_results:  # the target numbers these itself
                rows = [{k: v for k, v in row.items() if k != "id"} for row in rows]
            with target.begin() as out:
                out.execute(table.insert(), rows)
            copied += len(rows)
            step(len(rows))
    return copied


def _require_platform(engine: Engine) -> None:
    from sqlalchemy import inspect

    names = set(inspect(engine).get_table_names())
    dialect = engine.dialect.name
    if EVENTS[dialect] not in names or CHAIN[dialect] not in names:
        raise CopyRefused("the source holds no platform event log")


def _require_empty(engine: Engine) -> None:
    if _count_events(engine):
        raise CopyRefused("the target database already holds events: restore and copy go "
                          "into an empty database only")


def copy_platform(source: Settings, target: Settings, *, progress: Progress = _no_progress,
                  verify: bool = True) -> CopyReport:
    """Copy the platform at ``source`` into the empty database ``target``."""
    from adapters.platform import migrate

    src = _engine(source)
    try:
        _require_platform(src)
        migrate(target)
        dst = _engine(target)
        try:
            _require_empty(dst)
            report = CopyReport()
            last, head_hash = _head(src)
            total = _count_events(src, last)
            dialect = dst.dialect.name
            with progress("copying events", total) as step:
                for rows in _events(src, last):
                    with dst.begin() as conn:
                        _insert_events(conn, dialect, rows)
                    report.events += len(rows)
                    step(len(rows))
            with progress("copying chain", total) as step:
                for rows in _chain(src, last):
                    with dst.begin() as conn:
                        _insert_chain(conn, dialect, rows)
                    step(len(rows))
            if dialect == "postgresql" and last:
                with dst.begin() as conn:
                    conn.execute(text("SELECT setval(pg_get_serial_sequence("
                                      f"'{EVENTS[dialect]}', "
                                      "'notification_id'), :last)"), {"last": last})
            for table in OPERATIONAL_TABLES:
                report.rows[table.name] = _copy_rows(src, dst, table, progress)
            with src.connect() as conn:
                positions = conn.execute(select(projection_positions).where(
                    projection_positions.c.name.not_in(READ_MODEL_PROJECTORS))).all()
            if positions:
                with dst.begin() as conn:
                    conn.execute(projection_positions.insert(),
                                 [{"name": n, "position": min(p, last)} for n, p in positions])
            report.head_position = last
            report.head_hash = head_hash.hex() if head_hash else ""
        finally:
            dst.dispose()
    finally:
        src.dispose()
    if verify:
        check_copy(target, report, progress=progress, expected_events=total)
    return report


def check_copy(target: Settings, report: CopyReport, *, progress: Progress = _no_progress,
               expected_events: int | None = None,
               expected_balances: dict[tuple[str, str], int] | None = None) -> None:
    """Rebuild the read models on ``target`` and check it: the chain verifies and ends at
    the source's head, the event count, each wallet's balance as the events give it
    equals the read model's, and the trial balance is zero. Raises ``CopyFailed``."""
    from adapters.platform import Platform
    from domain.account import Account
    from ledger.chain import verify_chain

    platform = Platform(target.model_copy(update={"auto_migrate": False}))
    try:
        last = platform.ledger.recorder.max_notification_id() or 0
        # The chain first: nothing of a copy whose events differ is worth projecting.
        chain = verify_chain(platform.ledger.recorder)
        report.checks["chain"] = bool(chain["ok"]) and (
            not report.head_hash or chain["head"]["hash"] == report.head_hash)
        if not report.checks["chain"]:
            raise CopyFailed("the copy does not check out: its hash chain differs "
                             f"({(chain['first_break'] or {}).get('reason', 'another head')})")
        with progress("building read models", last) as step:
            platform.projector.catch_up(on_batch=step)
        engine = platform.engines.reader
        count = _count_events(engine)
        report.checks["event_count"] = expected_events is None or count == expected_events
        from_events: dict[tuple[str, str], int] = {}
        with progress("checking balances", count) as step:
            start = 0
            while True:
                notes = platform.ledger.recorder.select_notifications(
                    start=start, limit=PAGE, inclusive_of_start=False)
                if not notes:
                    break
                for note in notes:
                    if ":Account." not in note.topic:
                        continue
                    event = platform.ledger.mapper.to_domain_event(note)
                    if isinstance(event, Account.MoneyEvent):
                        from_events[(str(event.originator_id), event.wallet)] = \
                            event.balance_after_fen
                start = notes[-1].id
                step(len(notes))
        with engine.connect() as conn:
            projected = {(str(a), w): int(b) for a, w, b in conn.execute(select(
                wallet_balances.c.account_id, wallet_balances.c.wallet,
                wallet_balances.c.balance_fen)).all()}
            debit, credit = conn.execute(select(func.coalesce(func.sum(
                ledger_totals.c.debit_fen), 0), func.coalesce(func.sum(
                    ledger_totals.c.credit_fen), 0))).one()
        moved = {key: value for key, value in projected.items()
                 if key in from_events or value != 0}
        report.wallets = len(from_events)
        report.checks["balances"] = moved == from_events and (
            expected_balances is None or expected_balances == projected)
        report.checks["trial_balance"] = int(debit) == int(credit)
    finally:
        platform.close()
    failed = [name for name, ok in report.checks.items() if not ok]
    if failed:
        raise CopyFailed(f"the copy does not check out: {', '.join(failed)} differ")


def current_balances(settings: Settings, last: int) -> dict[tuple[str, str], int] | None:
    """Each wallet's balance in the read model of ``settings``, when that read model has
    applied the log up to ``last`` (``None`` otherwise: it cannot be compared)."""
    engine = _engine(settings)
    try:
        with engine.connect() as conn:
            position = conn.execute(select(projection_positions.c.position).where(
                projection_positions.c.name == READ_MODEL_PROJECTORS[0])).scalar() or 0
            if position != last:
                return None
            return {(str(a), w): int(b) for a, w, b in conn.execute(select(
                wallet_balances.c.account_id, wallet_balances.c.wallet,
                wallet_balances.c.balance_fen)).all()}
    finally:
        engine.dispose()


def backup(settings: Settings, path: str, *, progress: Progress = _no_progress) -> CopyReport:
    """Write a consistent backup of the running platform to ``path`` (a new file)."""
    if os.path.exists(path):
        raise CopyRefused(f"{path} exists: a backup goes to a new file")
    if settings.is_sqlite:
        source = sqlite3.connect(settings.sqlite_path, timeout=30)
        target = sqlite3.connect(path)
        try:
            with progress("backing up pages", None) as step:
                state = {"done": 0}

                def advance(status, remaining, total):
                    copied = total - remaining
                    step(copied - state["done"])
                    state["done"] = copied

                source.backup(target, pages=1024, progress=advance)
        finally:
            target.close()
            source.close()
        engine = create_engine(f"sqlite:///{path}")
        try:
            last, head_hash = _head(engine)
            report = CopyReport(events=_count_events(engine), head_position=last,
                                head_hash=head_hash.hex() if head_hash else "")
        finally:
            engine.dispose()
        return report
    target = Settings(database_url=f"sqlite:///{os.path.abspath(path)}", auto_migrate=True)
    return copy_platform(settings, target, progress=progress, verify=False)


def restore(path: str, settings: Settings, *, progress: Progress = _no_progress
            ) -> CopyReport:
    """Restore a backup file into the empty database of ``settings``, and check it."""
    if not os.path.isfile(path):
        raise CopyRefused(f"{path} is not a file")
    with open(path, "rb") as handle:
        if handle.read(16) != b"SQLite format 3\x00":
            raise CopyRefused(f"{path} is not a platform backup")
    source = Settings(database_url=f"sqlite:///{os.path.abspath(path)}", auto_migrate=False)
    return copy_platform(source, settings, progress=progress)
