"""The one-by-one writer: decide on the stored state, save atomically, retry on conflicts."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from domain.errors import ConcurrencyLimitExceeded, DomainError, NotFound
from ledger.core.types import Decide
from ledger.outcome import Outcome, position_of

DEFAULT_MAX_WRITE_ATTEMPTS = 25
MAX_BACKOFF_S = 0.05


class WriteStore(Protocol):
    def load(self, aggregate_id: UUID, kind: type, missing: type[DomainError]) -> Any: ...
    def save(self, *aggregates: Any) -> Any: ...
    def replay(self, transaction_id: UUID, digest: str) -> Outcome | None: ...


class Writer:
    def __init__(self, store: WriteStore, *, max_attempts: int = DEFAULT_MAX_WRITE_ATTEMPTS,
                 rng: random.Random | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        assert max_attempts > 0
        self.store = store
        self.max_attempts = max_attempts
        self.rng = rng or random.Random()
        self.sleep = sleep

    def write(self, transaction_id: UUID, digest: str, decide: Decide) -> Outcome:
        """Decide on the stored state and save atomically, retrying on conflicts.

        A save fails on the unique constraint when another writer moved one of the
        aggregates on since it was read (it is decided again) or when a duplicate of this
        request got there first (it is answered from the first request's stored result).
        A request refused by the rules may be a duplicate too: a retried refund must be
        replayed, not judged again against the balance that the first one lowered.
        """
        for attempt in range(self.max_attempts):
            try:
                aggregates, result = decide(self.store.load)
            except NotFound:
                raise
            except DomainError:
                replay = self.store.replay(transaction_id, digest)
                if replay is not None:
                    return replay
                raise
            try:
                recordings = self.store.save(*aggregates)
            except IntegrityError:
                replay = self.store.replay(transaction_id, digest)
                if replay is not None:
                    return replay
                self.backoff(attempt)
                continue
            return Outcome(result, True, position_of(recordings))
        raise ConcurrencyLimitExceeded("too many concurrent writers; retry the request")

    def backoff(self, attempt: int) -> None:
        """Full jitter, doubling from a millisecond up to MAX_BACKOFF_S."""
        self.sleep(self.rng.uniform(0, min(MAX_BACKOFF_S, 0.001 * 2 ** attempt)))
