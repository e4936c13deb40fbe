"""A process manager over the event log: a policy decides on each batch of events, acts
through the ledger, and only then moves its tracked position on.

What a policy writes goes through the ledger, so it cannot share one transaction with its
position. It is idempotent instead: what it issues has an id fixed by its cause (the event
that moved a balance across a threshold), the commands are written first and the position
only after, so after a crash the batch is run again and what was issued already is
recognised and skipped. Nothing is lost and nothing is issued twice.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from sqlalchemy import Connection

from projections.db import Engines
from projections.tracking import TrackedPosition, events_after


class Policy(Protocol):
    name: str

    def decide(self, conn: Connection, events: list[tuple[int, Any]]) -> list: ...
    def act(self, decisions: list) -> None: ...


class PolicyProcessor:
    """Runs a policy (``decide`` on a batch of events, then ``act``) over the event log."""

    def __init__(self, ledger: Any, engines: Engines, policy: Policy,
                 batch_size: int = 1000) -> None:
        self.ledger = ledger
        self.engines = engines
        self.policy = policy
        self.name = policy.name
        self.batch_size = batch_size
        self.tracking = TrackedPosition(engines, policy.name)
        self._lock = threading.Lock()

    def position(self) -> int:
        return self.tracking.read()

    def catch_up(self) -> int:
        handled = 0
        with self._lock:
            while True:
                notes, events = events_after(self.ledger, self.tracking.read(),
                                             self.batch_size)
                if not notes:
                    return handled
                with self.engines.reader.connect() as conn:
                    decisions = self.policy.decide(conn, events)
                if decisions:
                    self.policy.act(decisions)         # first the commands,
                self.tracking.save(notes[-1].id)       # then the position
                handled += len(notes)
