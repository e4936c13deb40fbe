"""Group commit: money commands that arrive together are saved in one transaction.

The event store takes a table lock for each insert (it must, so that the notification
log never shows a later id before an earlier one), so every save is a serial step that
includes a disk flush. Two things make that step count less:

* Batching: the commands that queued up meanwhile are decided one after another on
  shared aggregate instances and saved all at once, paying the flush once per batch.
* Pipelining: one thread decides and encodes the next batch while another waits for the
  database to store the previous one.

Exactly-once is not weakened. Each command still has its own ``Transaction`` record with
the id from its idempotency key, and all records and money events of a batch are written
in one atomic insert. A batch is decided on the state the batches before it *will* have
if they are stored, so when one fails (another process wrote one of its aggregates, or a
duplicate key raced in) nothing of it is kept, every batch decided after it is discarded
too (the "epoch" moves on), and their commands are done again one by one through the
ordinary path (``Ledger.write_alone``), which reads the stored state, retries and replays.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from ledger.outcome import Outcome

if TYPE_CHECKING:
    from ledger.app import Ledger

Loader = Callable[[UUID, type, type[Exception]], Any]
# A decision: loads what it needs, applies the rules, returns the aggregates to save
# (their pending events) and the caller's answer.
Decide = Callable[[Loader], "tuple[list[Any], dict[str, Any]]"]

log = logging.getLogger(__name__)
_STOP = object()


@dataclass
class _Preload:
    """Fill the decider's memory with these aggregates (and what they name) in bulk."""

    ids: list[UUID]
    expand: Callable[[Any], list[UUID]]


@dataclass
class _Job:
    transaction_id: UUID
    digest: str
    decide: Decide
    future: Future = field(default_factory=Future)
    # Aggregates the caller already read from the store (in its own thread, in parallel
    # with other callers), used if the committer does not hold them. Stale ones are safe:
    # their save fails on the version and the command is done again the ordinary way.
    prefetched: dict[UUID, Any] = field(default_factory=dict)


@dataclass
class _Decided:
    """A batch decided and encoded, waiting for its turn to be stored."""

    epoch: int
    decided: list[tuple[_Job, dict[str, Any]]]
    alone: list[_Job]
    events: list[Any]
    stored: list[Any]
    aggregates: dict[UUID, type]


class GroupCommitter:
    def __init__(self, ledger: Ledger, max_commands: int, linger_s: float,
                 hot_aggregates: int) -> None:
        assert max_commands > 1 and linger_s >= 0 and hot_aggregates > 0
        self.ledger = ledger
        self.max_commands = max_commands
        self.linger_s = linger_s
        self.hot_max = hot_aggregates
        self.batches_saved = 0
        self.commands_saved = 0
        # The aggregates as the decider left them: the state after every batch it has
        # handed on. Only the decider thread touches them.
        self._hot: OrderedDict[UUID, Any] = OrderedDict()
        self._epoch = 0  # moved on by the saver when a batch fails
        self._decider_epoch = 0
        self._stale: set[UUID] = set()  # changed by ordinary writes; the decider drops them
        self._stale_lock = threading.Lock()
        self._last_batch_size = 1
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._to_save: queue.Queue = queue.Queue(maxsize=1)
        self._decider = threading.Thread(target=self._decide_loop, name="commit-decide",
                                         daemon=True)
        self._saver = threading.Thread(target=self._save_loop, name="commit-save", daemon=True)
        self._decider.start()
        self._saver.start()

    def submit(self, transaction_id: UUID, digest: str, decide: Decide,
               prefetched: dict[UUID, Any] | None = None) -> Outcome:
        job = _Job(transaction_id, digest, decide, prefetched=prefetched or {})
        self._jobs.put(job)
        return job.future.result()

    def submit_many(self, commands: list[tuple[UUID, str, Decide]]) -> list[Future]:
        """Queue many commands at once (a batch of readings); answers come as futures."""
        jobs = [_Job(transaction_id, digest, decide) for transaction_id, digest, decide in
                commands]
        for job in jobs:
            self._jobs.put(job)
        return [job.future for job in jobs]

    def preload(self, ids: list[UUID], expand: Callable[[Any], list[UUID]]) -> None:
        """Ask the decider to load these aggregates, then those ``expand`` names, in bulk,
        before it decides the commands queued after this call."""
        self._jobs.put(_Preload(ids, expand))

    def mark_stale(self, aggregate_ids) -> None:
        """Aggregates changed outside this committer: read them again before deciding."""
        with self._stale_lock:
            self._stale.update(aggregate_ids)

    def stop(self) -> None:
        self._jobs.put(_STOP)
        self._decider.join(timeout=30)
        self._saver.join(timeout=30)

    # -- stage 1: decide -------------------------------------------------------------

    def _decide_loop(self) -> None:
        while True:
            batch, stopping = self._next_batch()
            if batch:
                try:
                    self._to_save.put(self._decide(batch))
                except BaseException as error:  # never leave a caller waiting
                    _fail(batch, error)
            if stopping:
                self._to_save.put(_STOP)
                return

    def _next_batch(self) -> tuple[list[_Job], bool]:
        first = self._jobs.get()
        while isinstance(first, _Preload):
            self._preload(first)
            first = self._jobs.get()
        if first is _STOP:
            return [], True
        batch = [first]
        # As many writers as last time are probably about to send their next command:
        # wait a moment for them rather than pay a whole save for a part of them.
        deadline = time.monotonic() + self.linger_s
        while len(batch) < self.max_commands:
            try:
                if len(batch) < self._last_batch_size:
                    job = self._jobs.get(timeout=max(deadline - time.monotonic(), 0))
                else:
                    job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                return batch, True
            if isinstance(job, _Preload):
                self._preload(job)  # the batch gathered so far is not decided yet
                continue
            batch.append(job)
        self._last_batch_size = len(batch)
        return batch, False

    def _refresh(self) -> int:
        epoch = self._epoch
        if epoch != self._decider_epoch:  # a batch failed: what we hold may never be
            self._hot.clear()             # stored; start again from the store
            self._decider_epoch = epoch
        with self._stale_lock:
            for aggregate_id in self._stale:
                self._hot.pop(aggregate_id, None)
            self._stale.clear()
        return epoch

    def _preload(self, request: _Preload) -> None:
        try:
            self._refresh()
            loaded = self._load_missing(request.ids)
            self._load_missing([i for a in loaded.values() for i in request.expand(a) if i])
        except Exception:  # only an optimisation: the decisions load what is missing
            log.exception("preloading aggregates failed")

    def _load_missing(self, ids: list[UUID]) -> dict[UUID, Any]:
        missing = [i for i in dict.fromkeys(ids) if i not in self._hot]
        if not missing:
            return {}
        loaded = self.ledger.load_many(missing)
        for aggregate_id, aggregate in loaded.items():
            self._hot[aggregate_id] = aggregate
        while len(self._hot) > self.hot_max:
            self._hot.popitem(last=False)
        return loaded

    def _decide(self, batch: list[_Job]) -> _Decided:
        epoch = self._refresh()

        working: dict[UUID, Any] = {}
        current: dict[str, dict[UUID, Any]] = {"prefetched": {}}

        def load(aggregate_id: UUID, kind: type, missing: type[Exception]) -> Any:
            found = working.get(aggregate_id)
            if found is None:
                found = self._hot.get(aggregate_id)
                if found is None:
                    found = current["prefetched"].get(aggregate_id)
                if found is None:
                    found = self.ledger.load(aggregate_id, kind, missing)
                elif not isinstance(found, kind):
                    raise missing(f"{kind.__name__.lower()} {aggregate_id} does not exist")
                working[aggregate_id] = found
            elif not isinstance(found, kind):
                raise missing(f"{kind.__name__.lower()} {aggregate_id} does not exist")
            return found

        decided: list[tuple[_Job, Any]] = []
        alone: list[_Job] = []
        keys: set[UUID] = set()
        for index, job in enumerate(batch):
            if job.transaction_id in keys:  # a duplicate inside the batch: after it
                alone.append(job)
                continue
            pending_before = _pending(working)
            current["prefetched"] = job.prefetched
            try:
                aggregates, result = job.decide(load)
            except Exception:
                if _pending(working) != pending_before:
                    # A rule failed after an event was triggered: the shared state can no
                    # longer be trusted, so the whole batch goes the ordinary way.
                    for aggregate_id in working:
                        self._hot.pop(aggregate_id, None)
                    return _Decided(epoch, [], batch, [], [], {})
                alone.append(job)  # judged again, and answered, on its own
                continue
            decided.append((job, result))
            keys.add(job.transaction_id)
            for aggregate in aggregates:
                working.setdefault(aggregate.id, aggregate)

        events = [event for aggregate in working.values() for event in aggregate.collect_events()]
        stored = [self.ledger.mapper.to_stored_event(event) for event in events]
        for aggregate_id, aggregate in working.items():
            self._hot[aggregate_id] = aggregate
            self._hot.move_to_end(aggregate_id)
        while len(self._hot) > self.hot_max:
            self._hot.popitem(last=False)
        return _Decided(epoch, decided, alone, events, stored,
                        {i: type(a) for i, a in working.items()})

    # -- stage 2: store --------------------------------------------------------------

    def _save_loop(self) -> None:
        while True:
            item = self._to_save.get()
            if item is _STOP:
                return
            try:
                self._save(item)
            except BaseException as error:
                _fail([job for job, _ in item.decided] + item.alone, error)

    def _save(self, batch: _Decided) -> None:
        alone = batch.alone
        if batch.decided:
            if batch.epoch != self._epoch:  # decided on top of a batch that failed
                alone = [job for job, _ in batch.decided] + alone
            else:
                try:
                    ids = self.ledger.recorder.insert_events(batch.stored)
                except IntegrityError:
                    self._epoch += 1
                    log.info("a batch of %d commands met another writer; doing them one by "
                             "one", len(batch.decided))
                    alone = [job for job, _ in batch.decided] + alone
                else:
                    self.batches_saved += 1
                    self.commands_saved += len(batch.decided)
                    position = max(ids) if ids else None
                    for job, result in batch.decided:
                        job.future.set_result(Outcome(result, True, position))
                    self._take_snapshots(batch)
        for job in alone:
            self._run_alone(job)

    def _run_alone(self, job: _Job) -> None:
        touched: set[UUID] = set()

        def decide(load: Loader):
            aggregates, result = job.decide(load)
            touched.update(aggregate.id for aggregate in aggregates)
            return aggregates, result

        try:
            outcome = self.ledger.write_alone(job.transaction_id, job.digest, decide)
        except BaseException as error:
            job.future.set_exception(error)
        else:
            job.future.set_result(outcome)
        finally:
            with self._stale_lock:
                self._stale.update(touched)

    def _take_snapshots(self, batch: _Decided) -> None:
        intervals = self.ledger.snapshotting_intervals
        for event in batch.events:
            interval = intervals.get(batch.aggregates.get(event.originator_id))
            if interval and event.originator_version % interval == 0:
                self.ledger.take_snapshot(event.originator_id, event.originator_version)


def _pending(working: dict[UUID, Any]) -> int:
    return sum(len(aggregate.pending_events) for aggregate in working.values())


def _fail(jobs: list[_Job], error: BaseException) -> None:
    for job in jobs:
        if not job.future.done():
            job.future.set_exception(error)
