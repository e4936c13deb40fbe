"""Projections: exactly once across crashes, equal to a rebuild, on both databases."""

from __future__ import annotations

import uuid
from contextlib import ExitStack

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from bootstrap import Platform
from projections.access.view import AccessView
from projections.accounts.view import LedgerView
from projections.alerts.view import AlertView
from projections.devices.view import DeviceView
from projections.metering.view import MeteringView
from projections.payments.view import PaymentView
from projections.projector import Projector
from projections.property.view import PropertyView
from projections.tables import metadata
from tests.conftest import read_models


class Crash(Exception):
    pass


def other_views() -> list:
    """The views of metering, devices, payments, property and alerts, in the order the
    platform runs them."""
    return [MeteringView(), DeviceView(), PaymentView(), PropertyView(), AlertView()]


class CrashingView(LedgerView):
    """Writes its rows, then dies before the batch commits, on the chosen batch."""

    def __init__(self, crash_on_batch: int) -> None:
        self.batches = 0
        self.crash_on_batch = crash_on_batch

    def prepare(self, events):  # apply_batch and the read-ahead both come through here
        write = super().prepare(events)

        def write_then_crash(conn):
            write(conn)
            self.batches += 1
            if self.batches == self.crash_on_batch:
                raise Crash("power cut")
        return write_then_crash


def busy_history(platform: Platform, accounts: int = 5, operations: int = 12) -> None:
    ledger = platform.ledger
    ids = [uuid.UUID(ledger.accounts.open_account(name=f"Shop {n}", actor={}).result["account_id"])
           for n in range(accounts)]
    for n in range(operations):
        for account_id in ids:
            sale = ledger.accounts.top_up(account_id, amount_fen=100 + n, channel="cash", actor={})
            if n % 3 == 0:
                ledger.accounts.refund(account_id, amount_fen=50, channel="bank", actor={})
            if n % 5 == 0:
                ledger.accounts.reverse(uuid.UUID(sale.result["transaction_id"]), actor={},
                                        reason="test", force=True)
    ledger.accounts.close_account(ids[0], settlement="refund", actor={})


def test_a_crash_mid_way_leaves_no_trace_and_resumes_to_the_rebuild(platform):
    busy_history(platform)
    crashing = Projector(platform.ledger, platform.engines,
                         [CrashingView(crash_on_batch=3), *other_views()], batch_size=7)
    with pytest.raises(Crash):
        crashing.catch_up()
    assert crashing.position() == 14  # two batches of 7 committed, the third rolled back

    # A fresh processor (the restarted process) carries on from the recorded position.
    Projector(platform.ledger, platform.engines, [LedgerView(), *other_views()],
              batch_size=7).catch_up()
    resumed = read_models(platform)
    platform.rebuild_projections()
    assert read_models(platform) == resumed
    total = platform.ledger.recorder.max_notification_id()
    assert platform.projector.position() == total


def test_two_processors_racing_apply_each_event_once(platform):
    busy_history(platform, accounts=3, operations=6)
    first = Projector(platform.ledger, platform.engines, [LedgerView(), *other_views()],
                      batch_size=5)
    second = Projector(platform.ledger, platform.engines, [LedgerView(), *other_views()],
                       batch_size=5)
    import threading

    threads = [threading.Thread(target=p.catch_up) for p in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    raced = read_models(platform)
    platform.rebuild_projections()
    assert read_models(platform) == raced


class CommitModeView:
    """Notes how the projector's transaction commits (PostgreSQL's setting)."""

    name = "commit-mode"
    tables = ()

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.backends: set[int] = set()

    def apply_batch(self, conn, events):
        self.seen.append(conn.exec_driver_sql("SHOW synchronous_commit").scalar())
        self.backends.add(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar())


def test_read_model_batches_commit_without_waiting_for_the_flush_and_only_they(platform):
    """A batch of rows derived from the log, with its position, need not wait for the disk
    (a batch lost in a crash is applied again); the setting stays inside that transaction,
    so the connection's next user (a login counter, anything else) commits durably."""
    if platform.engines.writer.dialect.name != "postgresql":
        pytest.skip("synchronous_commit is PostgreSQL's")
    busy_history(platform, accounts=2, operations=2)
    view = CommitModeView()
    Projector(platform.ledger, platform.engines, [view], name="commit-mode",
              batch_size=5).catch_up()
    assert len(view.seen) > 1 and set(view.seen) == {"off"}
    # The pooled connections those batches used, taken again: durable commits there.
    with ExitStack() as held:
        checked = set()
        for _ in range(20):
            conn = held.enter_context(platform.engines.writer.connect())
            backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            if backend in view.backends:
                assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
                checked.add(backend)
            if checked == view.backends:
                break
    assert checked == view.backends


def test_read_models_survive_a_restart(settings, clock):
    first = Platform(settings, clock=clock)
    busy_history(first, accounts=2, operations=3)
    first.catch_up()
    before = read_models(first)
    first.close()
    second = Platform(settings, clock=clock)
    try:
        second.catch_up()
        assert read_models(second) == before
        account_rows = before["accounts"]
        assert len(account_rows) == 2
    finally:
        second.close()


def test_migrations_create_exactly_the_tables_the_code_uses(platform):
    with platform.engines.reader.connect() as conn:
        # The event store's own tables belong to the eventsourcing library, not to Alembic.
        context = MigrationContext.configure(conn, opts={
            "include_name": lambda name, kind, _: kind != "table" or name in metadata.tables})
        differences = compare_metadata(context, metadata)
        others = set(inspect(conn).get_table_names()) - set(metadata.tables)
    assert differences == []
    # Every table the migrations create is in the catalogue (the comparison above only
    # sees the tables the catalogue names): the rest are the event store's and Alembic's.
    events = "stored" if platform.settings.is_sqlite else "ledger"
    assert others == {"alembic_version", f"{events}_events", f"{events}_events_chain",
                      f"{events}_snapshots"}


def _schema_differences(conn) -> list:
    context = MigrationContext.configure(conn, opts={
        "include_name": lambda name, kind, _: kind != "table" or name in metadata.tables})
    return compare_metadata(context, metadata)


class IndexWatchingView:
    """Notes which of the read models' secondary indexes exist while a batch is applied."""

    name = "index-watch"
    tables = ()

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.seen: list[set[str]] = []

    def apply_batch(self, conn, events):
        present = set(conn.exec_driver_sql(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()").scalars())
        self.seen.append(present & self.names)


def test_a_rebuild_builds_the_secondary_indexes_at_its_end_and_a_stopped_one_gets_them_back(
        platform, caplog):
    """On PostgreSQL a rebuild writes the rows without the non-unique indexes and builds
    them once at the end: the schema after it is the migrations' schema, a rebuild that
    fails puts them back at once, and one stopped dead (the process killed) gets them
    back the next time the platform starts."""
    if platform.engines.writer.dialect.name != "postgresql":
        assert platform.projector.deferred_indexes() == []  # SQLite: nothing dropped
        return
    busy_history(platform)
    deferred = {index.name for index in platform.projector.deferred_indexes()}
    assert {"ix_statement_account", "ix_journal_transaction", "ix_statement_sales",
            "ix_audit_recorded"} <= deferred
    with platform.engines.reader.connect() as conn:
        assert _schema_differences(conn) == []
    platform.projector.catch_up()
    before = read_models(platform)
    assert before["statement_entries"] and before["journal_postings"]

    watcher = IndexWatchingView(deferred)
    views = [LedgerView(), *other_views(), AccessView(), watcher]
    rebuilt = Projector(platform.ledger, platform.engines, views, batch_size=20)
    rebuilt.rebuild()
    assert len(watcher.seen) > 3 and all(seen == set() for seen in watcher.seen)
    assert read_models(platform) == before
    with platform.engines.reader.connect() as conn:
        assert _schema_differences(conn) == []  # every index back, as the migrations made it

    crashing = Projector(platform.ledger, platform.engines,
                         [CrashingView(crash_on_batch=3), *other_views()], batch_size=7)
    with pytest.raises(Crash):
        crashing.rebuild()
    with platform.engines.reader.connect() as conn:
        assert _schema_differences(conn) == []

    # Killed mid-rebuild: the indexes it dropped are missing until the platform starts.
    with platform.engines.writer.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_statement_sales")
        conn.exec_driver_sql("DROP INDEX ix_journal_transaction")
    with platform.engines.reader.connect() as conn:
        assert _schema_differences(conn) != []
    caplog.set_level("WARNING", logger="projections.projector")
    restarted = Platform(platform.settings)
    try:
        with restarted.engines.reader.connect() as conn:
            assert _schema_differences(conn) == []
    finally:
        restarted.close()
    assert sorted(r.getMessage().split()[2] for r in caplog.records
                  if "was missing" in r.getMessage()) == ["ix_journal_transaction",
                                                          "ix_statement_sales"]
    platform.rebuild_projections()
    assert read_models(platform) == before


def test_the_audit_log_of_a_cashiers_work_is_the_same_after_a_rebuild(platform):
    """Every event a person caused is one audit row (written per batch, one COPY on
    PostgreSQL); a rebuild writes the same rows again."""
    from projections.access.tables import audit_log

    cashier = {"kind": "operator", "id": "c-1", "name": "cashier 1"}
    accounts = platform.ledger.accounts
    account_id = uuid.UUID(accounts.open_account(name="Shop A", actor={**cashier,
                                                 "request_id": "r-open"}).result["account_id"])
    for n in range(30):
        accounts.top_up(account_id, amount_fen=100 + n, channel="cash",
                        actor={**cashier, "request_id": f"r-{n}"})
    accounts.top_up(account_id, amount_fen=5, channel="cash", actor={})  # nobody's: no row
    platform.catch_up()

    def audit() -> list[tuple]:
        with platform.engines.reader.connect() as conn:
            return [tuple(row) for row in conn.execute(
                audit_log.select().order_by(audit_log.c.position))]

    before = audit()
    # The opening, then 30 top-ups: each an account event and a transaction record.
    assert len(before) == 61
    assert [r[5] for r in before][:5] == ["r-open", "r-0", "r-0", "r-1", "r-1"]
    assert all(r[2] == "operator" and r[4] == "cashier 1" for r in before)
    platform.rebuild_projections()
    assert audit() == before
