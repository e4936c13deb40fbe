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
ordinary path (``ledger/core/writer.py``), which reads the stored state, retries and replays.
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
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from ledger.core.types import Decide, Loader
from ledger.outcome import Outcome

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
    # Aggregates the decision will load (and, through ``expand``, what they name): read
    # for the whole batch in bulk, one query per level, before the batch is decided.
    needs: tuple[UUID, ...] = ()
    expand: Callable[[Any], list[UUID]] | None = None


@dataclass
class _Decided:
    """A batch decided and encoded, waiting for its turn to be stored."""

    epoch: int
    decided: list[tuple[_Job, dict[str, Any]]]
    alone: list[_Job]
    events: list[Any]
    stored: list[Any]
    snapshots: list[Any]  # stored snapshot events, written after the batch


class CommitStore(Protocol):
    """What the committer needs of the event store, and nothing of any feature."""

    mapper: Any  # encodes an aggregate's events for the recorder
    recorder: Any  # insert_events(stored) -> notification ids, atomically
    snapshots: Any  # None, or a store whose recorder takes encoded snapshots
    snapshotting_intervals: dict[type, int]
    snapshot_class: Any

    def load(self, aggregate_id: UUID, kind: type, missing: type[Exception]) -> Any: ...
    def load_many(self, ids: list[UUID]) -> dict[UUID, Any]: ...


WriteAlone = Callable[[UUID, str, Decide], Outcome]


class GroupCommitter:
    def __init__(self, store: CommitStore, write_alone: WriteAlone, max_commands: int,
                 linger_s: float, hot_aggregates: int, steady_linger_s: float = 0.0) -> None:
        assert max_commands > 1 and linger_s >= 0 and hot_aggregates > 0
        assert steady_linger_s >= 0
        self.store = store
        self.write_alone = write_alone
        self.max_commands = max_commands
        self.linger_s = linger_s
        self.steady_linger_s = steady_linger_s
        self._stopped = False
        self._last_arrival = time.monotonic()
        self._gap_s = 1.0  # moving average of the time between commands
        self.hot_max = hot_aggregates
        self.batches_saved = 0
        self.commands_saved = 0
        # Called after each stored batch with (commands, seconds the insert took).
        self.on_saved: Callable[[int, float], None] | None = None
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
        self._put(job)
        return job.future.result()

    def enqueue(self, transaction_id: UUID, digest: str, decide: Decide,
                needs: tuple[UUID, ...] = (),
                expand: Callable[[Any], list[UUID]] | None = None) -> Future:
        """Queue a command without waiting: its ``Outcome`` (or error) comes as a future,
        set once the batch holding it is committed. ``needs`` (and what ``expand`` finds
        in them) are loaded together with the rest of the batch's."""
        job = _Job(transaction_id, digest, decide, needs=needs, expand=expand)
        self._put(job)
        return job.future

    def _put(self, job: _Job) -> None:
        if self._stopped:
            raise RuntimeError("the ledger is shutting down")
        self._jobs.put(job)

    def submit_many(self, commands: list[tuple[UUID, str, Decide]]) -> list[Future]:
        """Queue many commands at once (a batch of readings); answers come as futures."""
        jobs = [_Job(transaction_id, digest, decide) for transaction_id, digest, decide in
                commands]
        for job in jobs:
            self._put(job)
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
        self._stopped = True
        self._jobs.put(_STOP)
        self._decider.join(timeout=30)
        self._saver.join(timeout=30)
        # Whatever was queued after the stop is answered, not left waiting.
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if isinstance(job, _Job):
                _fail([job], RuntimeError("the ledger is shutting down"))

    # -- stage 1: decide -------------------------------------------------------------

    def _decide_loop(self) -> None:
        while True:
            batch, stopping = self._next_batch()
            if batch:
                try:
                    self._to_save.put(self._decide(batch))
                except BaseException as error:  # never leave a caller waiting
                    # The batch's aggregates may have been changed in memory already:
                    # nothing held here can be trusted to match the store any more.
                    self._hot.clear()
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
        started = self._arrived_s()
        # Closed-loop writers: as many as last time are probably about to send their next
        # command; wait a moment for them rather than pay a whole save for a part of them.
        closed_deadline = started + self.linger_s
        # A steady stream (payment notifications, readings): while commands keep coming
        # closer together than the steady linger, gather for up to that long, waiting at
        # most two usual gaps for each next one. Each save costs about the same for one
        # command as for ten, so this buys back more than it waits.
        steady = self._gap_s < self.steady_linger_s
        steady_deadline = started + self.steady_linger_s if steady else started
        while len(batch) < self.max_commands:
            now = time.monotonic()
            if len(batch) < self._last_batch_size and now < closed_deadline:
                timeout = closed_deadline - now
            elif now < steady_deadline:
                timeout = min(steady_deadline - now, 2 * self._gap_s)
            else:
                timeout = 0.0
            try:
                job = self._jobs.get(timeout=timeout) if timeout > 0 else \
                    self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                return batch, True
            if isinstance(job, _Preload):
                self._preload(job)  # the batch gathered so far is not decided yet
                continue
            self._arrived_s()
            batch.append(job)
        self._last_batch_size = len(batch)
        return batch, False

    def _arrived_s(self) -> float:
        """Note a command's arrival; keeps a moving average of the gap between them."""
        now = time.monotonic()
        gap = min(now - self._last_arrival, 1.0)
        self._last_arrival = now
        self._gap_s = 0.9 * self._gap_s + 0.1 * gap
        return now

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
        loaded = self.store.load_many(missing)
        for aggregate_id, aggregate in loaded.items():
            self._hot[aggregate_id] = aggregate
        while len(self._hot) > self.hot_max:
            self._hot.popitem(last=False)
        return loaded

    def _load_needs(self, batch: list[_Job]) -> None:
        needed = [i for job in batch for i in job.needs if i not in self._hot]
        if not needed:
            return
        try:
            self._load_missing(needed)
            named = [i for job in batch if job.expand is not None for need in job.needs
                     if (found := self._hot.get(need)) is not None
                     for i in job.expand(found) if i]
            self._load_missing(named)
        except Exception:  # only an optimisation: the decisions load what is missing
            log.exception("loading a batch's aggregates failed")

    def _decide(self, batch: list[_Job]) -> _Decided:
        epoch = self._refresh()
        self._load_needs(batch)

        working: dict[UUID, Any] = {}
        current: dict[str, dict[UUID, Any]] = {"prefetched": {}}
        # What the decision in hand has loaded, with its pending events at the time: if
        # it fails, were events already triggered on shared state?
        seen: dict[UUID, tuple[Any, int]] = {}

        def load(aggregate_id: UUID, kind: type, missing: type[Exception]) -> Any:
            found = working.get(aggregate_id)
            if found is not None and aggregate_id not in seen:
                seen[aggregate_id] = (found, len(found.pending_events))
            if found is None:
                found = self._hot.get(aggregate_id)
                if found is None:
                    found = current["prefetched"].get(aggregate_id)
                if found is None:
                    found = self.store.load(aggregate_id, kind, missing)
                elif not isinstance(found, kind):
                    raise missing(f"{kind.__name__.lower()} {aggregate_id} does not exist")
                working[aggregate_id] = found
                seen[aggregate_id] = (found, len(found.pending_events))
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
            seen.clear()
            current["prefetched"] = job.prefetched
            try:
                aggregates, result = job.decide(load)
            except Exception:
                if any(len(a.pending_events) != n for a, n in seen.values()):
                    # A rule failed after an event was triggered: the shared state can no
                    # longer be trusted, so the whole batch goes the ordinary way.
                    for aggregate_id in working:
                        self._hot.pop(aggregate_id, None)
                    return _Decided(epoch, [], batch, [], [], [])
                alone.append(job)  # judged again, and answered, on its own
                continue
            decided.append((job, result))
            keys.add(job.transaction_id)
            for aggregate in aggregates:
                working.setdefault(aggregate.id, aggregate)

        events = [event for aggregate in working.values() for event in aggregate.collect_events()]
        stored = [self.store.mapper.to_stored_event(event) for event in events]
        snapshots = self._snapshots(working, events)
        for aggregate_id, aggregate in working.items():
            self._hot[aggregate_id] = aggregate
            self._hot.move_to_end(aggregate_id)
        while len(self._hot) > self.hot_max:
            self._hot.popitem(last=False)
        return _Decided(epoch, decided, alone, events, stored, snapshots)

    def _snapshots(self, working: dict[UUID, Any], events: list[Any]) -> list[Any]:
        """Snapshots of the aggregates whose events in this batch passed a multiple of
        their interval, taken from memory at the state the batch leaves them in (and
        encoded now, before later batches change them). Stored only if the batch is."""
        store = self.store.snapshots
        intervals = self.store.snapshotting_intervals
        if store is None or not intervals:
            return []
        due: set[UUID] = set()
        for event in events:
            aggregate = working.get(event.originator_id)
            interval = intervals.get(type(aggregate))
            if interval and event.originator_version % interval == 0:
                due.add(event.originator_id)
        taken = []
        for aggregate_id in due:
            aggregate = working[aggregate_id]
            snapshot_class = getattr(type(aggregate), "Snapshot", None) or \
                self.store.snapshot_class
            taken.append(store.mapper.to_stored_event(snapshot_class.take(aggregate)))
        return taken

    # -- stage 2: store --------------------------------------------------------------

    def _save_loop(self) -> None:
        while True:
            item = self._to_save.get()
            if item is _STOP:
                return
            try:
                self._save(item)
            except BaseException as error:
                self._epoch += 1  # what was decided on top of this batch must not be kept
                _fail([job for job, _ in item.decided] + item.alone, error)

    def _save(self, batch: _Decided) -> None:
        alone = batch.alone
        if batch.decided:
            if batch.epoch != self._epoch:  # decided on top of a batch that failed
                alone = [job for job, _ in batch.decided] + alone
            else:
                try:
                    started = time.monotonic()
                    ids = self.store.recorder.insert_events(batch.stored)
                    took = time.monotonic() - started
                except IntegrityError:
                    self._epoch += 1
                    log.info("a batch of %d commands met another writer; doing them one by "
                             "one", len(batch.decided))
                    alone = [job for job, _ in batch.decided] + alone
                except Exception as error:
                    # The database failed (connection lost, lock timeout, ...). The
                    # decider's memory is now ahead of the store: move the epoch on so
                    # that nothing decided on top of this batch is stored, and tell these
                    # callers (a provider delivers again; staff retry with their key).
                    self._epoch += 1
                    log.warning("storing a batch of %d commands failed: %s",
                                len(batch.decided), error)
                    _fail([job for job, _ in batch.decided], error)
                else:
                    self.batches_saved += 1
                    self.commands_saved += len(batch.decided)
                    if self.on_saved is not None:
                        try:
                            self.on_saved(len(batch.decided), took)
                        except Exception:  # metrics never fail a command
                            log.exception("recording a batch's metrics failed")
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
            outcome = self.write_alone(job.transaction_id, job.digest, decide)
        except BaseException as error:
            job.future.set_exception(error)
        else:
            job.future.set_result(outcome)
        finally:
            with self._stale_lock:
                self._stale.update(touched)

    def _take_snapshots(self, batch: _Decided) -> None:
        if batch.snapshots:
            try:
                self.store.snapshots.recorder.insert_events(batch.snapshots)
            except Exception:  # a snapshot only saves reading; the events are stored
                log.exception("storing %d snapshots failed", len(batch.snapshots))


def _fail(jobs: list[_Job], error: BaseException) -> None:
    for job in jobs:
        if not job.future.done():
            job.future.set_exception(error)
