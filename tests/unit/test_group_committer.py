"""The group committer against a fake store: batches, and each of its failure paths."""

from __future__ import annotations

import copy
import threading
import uuid
from typing import Any

import pytest
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from domain.errors import DomainError, NotFound
from ledger.core.group_commit import GroupCommitter
from ledger.outcome import Outcome


class Counter(Aggregate):
    def __init__(self) -> None:
        self.total = 0

    @event("Added")
    def add(self, amount: int) -> None:
        if amount < 0:
            raise DomainError("negative")
        self.total += amount


class CounterMissing(NotFound):
    code = "counter-not-found"


class FakeRecorder:
    def __init__(self, committed: dict[uuid.UUID, Any]) -> None:
        self.committed = committed
        self.batches: list[list[Any]] = []
        self.fail_with: list[BaseException] = []  # raised by the next inserts, in turn
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def insert_events(self, stored: list[Any]) -> list[int]:
        self.entered.set()
        self.release.wait(5)
        if self.fail_with:
            raise self.fail_with.pop(0)
        self.batches.append(stored)
        apply(self.committed, stored)
        return list(range(1, len(stored) + 1))


def apply(committed: dict[uuid.UUID, Any], events: list[Any]) -> None:
    for domain_event in events:
        committed[domain_event.originator_id] = domain_event.mutate(
            committed[domain_event.originator_id])


class Mapper:
    @staticmethod
    def to_stored_event(domain_event: Any) -> Any:
        return domain_event


class FakeStore:
    """The narrow protocol the committer depends on, over a dict of committed aggregates
    (each load a copy, as a real store reads afresh)."""

    snapshots = None
    snapshotting_intervals: dict[type, int] = {}
    snapshot_class = None

    def __init__(self) -> None:
        self.mapper = Mapper()
        self.aggregates: dict[uuid.UUID, Counter] = {}
        self.recorder = FakeRecorder(self.aggregates)
        self.alone: list[uuid.UUID] = []

    def load(self, aggregate_id: uuid.UUID, kind: type, missing: type[Exception]) -> Any:
        found = copy.deepcopy(self.aggregates.get(aggregate_id))
        if not isinstance(found, kind):
            raise missing(f"{aggregate_id} does not exist")
        return found

    def load_many(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
        return {i: copy.deepcopy(self.aggregates[i]) for i in ids if i in self.aggregates}

    def write_alone(self, transaction_id: uuid.UUID, digest: str, decide) -> Outcome:
        self.alone.append(transaction_id)
        aggregates, result = decide(self.load)
        apply(self.aggregates, [e for a in aggregates for e in a.collect_events()])
        return Outcome(result, True, None)


def add(counter_id: uuid.UUID, amount: int):
    def decide(load):
        counter = load(counter_id, Counter, CounterMissing)
        counter.add(amount)
        return [counter], {"total": counter.total}
    return decide


@pytest.fixture
def store():
    return FakeStore()


@pytest.fixture
def committer(store):
    committer = GroupCommitter(store, store.write_alone, max_commands=50, linger_s=0.0,
                               hot_aggregates=100)
    yield committer
    committer.stop()


def counter(store: FakeStore) -> uuid.UUID:
    created = Counter()
    created.collect_events()
    store.aggregates[created.id] = created
    return created.id


def test_commands_queued_together_are_saved_in_one_batch(store, committer):
    target = counter(store)
    store.recorder.release.clear()  # hold the first save until the rest have queued
    first = committer.enqueue(uuid.uuid4(), "add", add(target, 1))
    assert store.recorder.entered.wait(5)
    rest = committer.submit_many([(uuid.uuid4(), "add", add(target, 1)) for _ in range(9)])
    store.recorder.release.set()
    assert [f.result(5).result["total"] for f in [first, *rest]] == list(range(1, 11))
    assert len(store.recorder.batches) < 10
    assert committer.commands_saved == 10
    assert store.alone == []


def test_a_refused_command_is_answered_alone_and_the_rest_are_saved(store, committer):
    target = counter(store)
    futures = committer.submit_many([(uuid.uuid4(), "add", add(target, 2)),
                                     (uuid.uuid4(), "add", add(uuid.uuid4(), 1)),
                                     (uuid.uuid4(), "add", add(target, 3))])
    assert futures[0].result(5).result == {"total": 2}
    with pytest.raises(CounterMissing):
        futures[1].result(5)
    assert futures[2].result(5).result == {"total": 5}


def test_a_batch_that_meets_another_writer_is_done_again_one_by_one(store, committer):
    target = counter(store)
    store.recorder.fail_with.append(IntegrityError("duplicate"))
    ids = [uuid.uuid4(), uuid.uuid4()]
    futures = committer.submit_many([(i, "add", add(target, 1)) for i in ids])
    assert [f.result(5).result for f in futures] == [{"total": 1}, {"total": 2}]
    assert store.alone == ids  # through the one-by-one writer, in order
    assert committer.commands_saved == 0


def test_a_database_failure_fails_the_batch_and_what_was_decided_on_it(store, committer):
    target = counter(store)
    store.recorder.fail_with.append(ConnectionError("lost"))
    failed = committer.submit_many([(uuid.uuid4(), "add", add(target, 1))])
    with pytest.raises(ConnectionError):
        failed[0].result(5)
    # The committer's memory was ahead of the store: the next batch reads it again.
    after = committer.submit(uuid.uuid4(), "add", add(target, 5))
    assert after.result == {"total": 5}
    assert store.aggregates[target].total == 5


def test_a_rule_broken_after_an_event_sends_the_whole_batch_alone(store, committer):
    target = counter(store)

    def add_then_refuse(load):
        found = load(target, Counter, CounterMissing)
        found.add(1)
        raise DomainError("refused after an event")

    store.recorder.release.clear()
    first = committer.enqueue(uuid.uuid4(), "add", add(target, 1))
    assert store.recorder.entered.wait(5)
    futures = committer.submit_many([(uuid.uuid4(), "add", add(target, 1)),
                                     (uuid.uuid4(), "bad", add_then_refuse)])
    store.recorder.release.set()
    first.result(5)
    with pytest.raises(DomainError):
        futures[1].result(5)
    assert futures[0].result(5).result == {"total": 2}
    assert len(store.alone) == 2  # neither was stored as part of a batch
    assert store.aggregates[target].total == 2


def test_commands_after_stop_are_refused(store):
    committer = GroupCommitter(store, store.write_alone, max_commands=50, linger_s=0.0,
                               hot_aggregates=100)
    committer.stop()
    with pytest.raises(RuntimeError):
        committer.submit(uuid.uuid4(), "add", add(counter(store), 1))
