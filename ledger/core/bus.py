"""The command bus: a decision goes to the group committer that owns its shard, or, with
group commit off, straight to the one-by-one writer. Features write only through here."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from domain.errors import AlreadyExists, DomainError
from ledger.core.group_commit import CommitStore, GroupCommitter
from ledger.core.types import Decide, Job
from ledger.core.writer import Writer
from ledger.outcome import Outcome

DEFAULT_GROUP_COMMIT_MAX_COMMANDS = 200
DEFAULT_GROUP_COMMIT_LINGER_S = 0.002
DEFAULT_GROUP_COMMIT_STEADY_LINGER_S = 0.01
DEFAULT_GROUP_COMMIT_SHARDS = 1
DEFAULT_HOT_AGGREGATES = 50_000


class CommandBus:
    def __init__(self, store: CommitStore, writer: Writer, *,
                 max_commands: int = DEFAULT_GROUP_COMMIT_MAX_COMMANDS,
                 linger_s: float = DEFAULT_GROUP_COMMIT_LINGER_S,
                 steady_linger_s: float = DEFAULT_GROUP_COMMIT_STEADY_LINGER_S,
                 shards: int = DEFAULT_GROUP_COMMIT_SHARDS,
                 hot_aggregates: int = DEFAULT_HOT_AGGREGATES) -> None:
        self.store = store
        self.writer = writer
        # Commands may be sharded by account over several committers (one account is only
        # ever changed by one of them). Each save holds the event store's table lock, so
        # fewer, larger saves beat more of them: one committer is the default.
        self.committers = [GroupCommitter(store, writer.write, max_commands, linger_s,
                                          hot_aggregates, steady_linger_s)
                           for _ in range(shards if max_commands > 1 else 0)]

    def committer_for(self, shard_id: UUID) -> GroupCommitter | None:
        """The committer that owns this id (an aggregate is only ever changed by one)."""
        if not self.committers:
            return None
        return self.committers[shard_id.int % len(self.committers)]

    def write(self, shard_id: UUID, transaction_id: UUID, digest: str, decide: Decide,
              prefetched: dict[UUID, Any] | None = None) -> Outcome:
        """Carry out one decision and wait for its answer."""
        committer = self.committer_for(shard_id)
        if committer is not None:
            return committer.submit(transaction_id, digest, decide, prefetched)
        return self.writer.write(transaction_id, digest, decide)

    def enqueue(self, shard_id: UUID, transaction_id: UUID, digest: str, decide: Decide,
                needs: tuple[UUID, ...] = (),
                expand: Callable[[Any], list[UUID]] | None = None) -> Future | None:
        """Queue a command on its committer and return at once with a future of its
        ``Outcome``; None when group commit is off (the caller writes synchronously)."""
        committer = self.committer_for(shard_id)
        if committer is None:
            return None
        return committer.enqueue(transaction_id, digest, decide, needs, expand)

    def write_many(self, jobs: list[Job]) -> list[Outcome | BaseException]:
        """Carry out many decisions (sharded by their own ids); a refused one answers its
        error in its place instead of raising."""
        if not jobs:
            return []
        if self.committers:
            futures = self.committers[0].submit_many(jobs) if len(self.committers) == 1 \
                else [self.committers[t.int % len(self.committers)].submit_many([(t, d, f)])[0]
                      for t, d, f in jobs]
            return [_wait(future) for future in futures]
        outcomes: list[Outcome | BaseException] = []
        for transaction_id, digest, decide in jobs:
            try:
                outcomes.append(self.writer.write(transaction_id, digest, decide))
            except DomainError as error:
                outcomes.append(error)
        return outcomes

    def save_changed(self, *aggregates: Any) -> None:
        """Save aggregates changed outside a decision (AlreadyExists on a race)."""
        try:
            self.store.save(*aggregates)
        except IntegrityError:
            raise AlreadyExists("changed by someone else at the same time; try again") from None
        # The group committer may hold these aggregates: let it read them again.
        for committer in self.committers:
            committer.mark_stale(a.id for a in aggregates)

    def mark_stale(self, aggregate_ids) -> None:
        for committer in self.committers:
            committer.mark_stale(aggregate_ids)

    def close(self) -> None:
        for committer in self.committers:
            committer.stop()


def _wait(future: Future) -> Outcome | BaseException:
    try:
        return future.result()
    except DomainError as error:
        return error
