"""Closing a month: after it, the month's books stay as they were when it was closed."""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

PERIOD_NAMESPACE = uuid5(NAMESPACE_URL, "prepaid-ledger/period")


def period_id_for(month: str) -> UUID:
    return uuid5(PERIOD_NAMESPACE, month)


class Period(Aggregate):
    @event("Closed")
    def __init__(self, month: str, starts_at: datetime, ends_at: datetime,
                 closed_at: datetime, actor: dict) -> None:
        self.month = month
        self.starts_at = starts_at
        self.ends_at = ends_at
        self.closed_at = closed_at

    @classmethod
    def close(cls, *, month: str, starts_at: datetime, ends_at: datetime, closed_at: datetime,
              actor: dict) -> Period:
        return cls._create(cls.Closed, id=period_id_for(month), month=month,
                           starts_at=starts_at, ends_at=ends_at, closed_at=closed_at,
                           actor=actor)
