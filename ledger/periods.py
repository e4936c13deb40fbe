"""Closing a month: its reports then stay as they stood at the close."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from domain.errors import AlreadyExists, DomainError
from domain.period import Period, period_id_for
from ledger.commands import Command, Handler
from ledger.clock import Clock
from ledger.core.store import EventStore


class PeriodNotOver(DomainError):
    code = "period-not-over"


class PeriodService:
    def __init__(self, store: EventStore, *, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def handlers(self) -> Mapping[type[Command], Handler]:
        """The commands this service carries out (``Ledger.execute`` routes them here)."""
        return {}

    def close_period(self, month: str, *, starts_at: datetime, ends_at: datetime,
                     actor: dict) -> Period:
        """Close the month once; closing it again answers the first close."""
        existing = self.store.find(period_id_for(month))
        if existing is not None:
            return existing
        now = self.clock()
        if now < ends_at:
            raise PeriodNotOver(f"{month} is not over yet")
        period = Period.close(month=month, starts_at=starts_at, ends_at=ends_at,
                              closed_at=now, actor=actor)
        try:
            self.store.save_new(period)
        except AlreadyExists:  # closed at the same time by someone else
            return self.store.find(period_id_for(month))
        return period

    def period_closed_at(self, month: str) -> datetime | None:
        period = self.store.find(period_id_for(month))
        return period.closed_at if isinstance(period, Period) else None
