"""The event store application: aggregates by id (a typed not-found when absent), many at
once, saved atomically, and a stored answer replayed for a repeated idempotency key."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, Repository
from eventsourcing.persistence import IntegrityError, Mapper, Transcoder

from domain.account import Account
from domain.device_command import DeviceCommand
from domain.errors import AlreadyExists, DomainError, IdempotencyConflict
from domain.transaction import Transaction
from ledger.core.transcoding import LedgerMapper, LedgerTranscoder
from ledger.outcome import Outcome

# The digest device commands are submitted with: a repeat answers the stored command.
DEVICE_COMMAND = "device-command"

BulkLoader = Callable[["EventStore", list[UUID]], dict[UUID, Any]]


class EventStore(Application):
    # The application's name keys its tables and environment: it stays "Ledger".
    name = "Ledger"
    snapshotting_intervals = {Account: 200}

    def __init__(self, env: Mapping[str, str] | None = None, *,
                 bulk_loader: BulkLoader | None = None) -> None:
        super().__init__(env)
        self._bulk_loader = bulk_loader
        # Aggregates that are never snapshotted are read without first asking the
        # snapshot table: one query instead of two.
        self._unsnapshotted = Repository(event_store=self.events)

    def construct_transcoder(self) -> Transcoder:
        """The stock JSON encoding, read back with less work (``ledger/core/transcoding.py``)."""
        transcoder = LedgerTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def construct_mapper(self) -> Mapper:
        return self.factory.mapper(transcoder=self.construct_transcoder(),
                                   mapper_class=LedgerMapper)

    def find(self, aggregate_id: UUID, kind: type | None = None) -> Any:
        """The aggregate as stored, or None."""
        repository = self.repository if kind is None or kind in self.snapshotting_intervals \
            else self._unsnapshotted
        try:
            return repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def load(self, aggregate_id: UUID, kind: type, missing: type[DomainError]) -> Any:
        """The aggregate of this kind as stored; ``missing`` when there is none."""
        found = self.find(aggregate_id, kind)
        if not isinstance(found, kind):
            raise missing(f"{kind.__name__.lower()} {aggregate_id} does not exist")
        return found

    get = load
    _find = find  # the older name, for callers not yet moved to ``find``

    def load_many(self, ids: list[UUID]) -> dict[UUID, Any]:
        """Many aggregates as stored (in bulk when a bulk loader was given)."""
        if self._bulk_loader is not None:
            return self._bulk_loader(self, ids)
        return {i: a for i in ids if (a := self.find(i)) is not None}

    def save_new(self, *aggregates: Any) -> None:
        """Save new aggregates in one atomic write; AlreadyExists if any of them does."""
        try:
            self.save(*aggregates)
        except IntegrityError:
            raise AlreadyExists("it exists already") from None

    def replay(self, transaction_id: UUID, digest: str) -> Outcome | None:
        """The stored answer to a request already carried out, None if it was not."""
        record = self.find(transaction_id)
        if record is None:
            return None
        if digest == DEVICE_COMMAND and isinstance(record, DeviceCommand):
            return Outcome({"command_id": str(record.id), "existing": True}, False)
        if not isinstance(record, Transaction) or record.request_fingerprint != digest:
            raise IdempotencyConflict("this Idempotency-Key was used for another request")
        return Outcome(record.result, False)
