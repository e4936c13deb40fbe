"""A transaction record: the request that caused a money event, kept for three reasons.

1. Idempotency: its id is derived from the caller's idempotency key, so a second attempt
   collides on the event store's unique constraint in the same atomic save.
2. Reversal at most once: a reversal marks the original, and a concurrent second reversal
   loses on the original's version.
3. The auditor's ``GET /transactions/{id}``: the postings, straight from the event store.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.chart import Posting, postings_from_dicts
from domain.errors import AlreadyReversed, NotReversible

TRANSACTION_NAMESPACE = uuid5(NAMESPACE_URL, "prepaid-ledger/transaction")
ACCOUNT_NAMESPACE = uuid5(NAMESPACE_URL, "prepaid-ledger/account")
REVERSIBLE_KINDS = frozenset({"top_up", "refund", "gift"})


def transaction_id_for(idempotency_key: str) -> UUID:
    return uuid5(TRANSACTION_NAMESPACE, idempotency_key)


def account_id_for(idempotency_key: str) -> UUID:
    return uuid5(ACCOUNT_NAMESPACE, idempotency_key)


def fingerprint(operation: str, **fields: Any) -> str:
    """A stable digest of what a request asked for (not of when or by whom)."""
    canonical = json.dumps({"operation": operation, **fields}, sort_keys=True, default=str,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class Transaction(Aggregate):
    @event("Recorded")
    def __init__(self, account_id: UUID, kind: str, wallet: str | None, amount_fen: int,
                 postings: list, effective_at: datetime, recorded_at: datetime, actor: dict,
                 idempotency_key: str | None, request_fingerprint: str,
                 corrects: UUID | None, result: dict) -> None:
        self.account_id = account_id
        self.kind = kind
        self.wallet = wallet
        self.amount_fen = amount_fen
        self.postings = postings
        self.effective_at = effective_at
        self.recorded_at = recorded_at
        self.actor = actor
        self.idempotency_key = idempotency_key
        self.request_fingerprint = request_fingerprint
        self.corrects = corrects
        self.result = result
        self.reversed_by: UUID | None = None

    @classmethod
    def record(cls, *, transaction_id: UUID, **fields: Any) -> Transaction:
        return cls._create(cls.Recorded, id=transaction_id, **fields)

    @property
    def posting_list(self) -> list[Posting]:
        return postings_from_dicts(self.postings)

    def require_reversible(self) -> None:
        if self.kind not in REVERSIBLE_KINDS:
            raise NotReversible(f"a {self.kind} transaction cannot be reversed")
        if self.reversed_by is not None:
            raise AlreadyReversed(f"transaction {self.id} was already reversed by "
                                  f"{self.reversed_by}")

    def mark_reversed(self, reversal_id: UUID, recorded_at: datetime, actor: dict) -> None:
        self.require_reversible()
        self._reversed(reversal_id=reversal_id, recorded_at=recorded_at, actor=actor)

    @event("Reversed")
    def _reversed(self, reversal_id: UUID, recorded_at: datetime, actor: dict) -> None:
        self.reversed_by = reversal_id
