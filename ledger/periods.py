"""Closing a month: its reports then stay as they stood at the close."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from domain.errors import AlreadyExists
from domain.period import Period, period_id_for
from ledger.commands import ClosePeriod, Command, Handler, PeriodContext, PeriodNotOver
from ledger.clock import Clock
from ledger.core.store import EventStore

__all__ = ["PeriodNotOver", "PeriodService"]


class PeriodService:
    def __init__(self, store: EventStore, *, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def handlers(self) -> Mapping[type[Command], Handler]:
        """The commands this service carries out (``Ledger.execute`` routes them here)."""
        return {ClosePeriod: self.carry_out_close_period}

    def close_period(self, month: str, *, starts_at: datetime, ends_at: datetime,
                     actor: dict) -> Period:
        """Close the month once; closing it again answers the first close."""
        return self.carry_out_close_period(ClosePeriod(month, starts_at, ends_at), actor)

    def carry_out_close_period(self, command: ClosePeriod, actor: dict) -> Period:
        ctx = PeriodContext(actor, self.clock())
        new, period = command.decide(self.store.load, ctx)
        if not new:
            return period
        try:
            self.store.save_new(*new)
        except AlreadyExists:  # closed at the same time by someone else
            return self.store.find(command.period_id())
        return period

    def period_closed_at(self, month: str) -> datetime | None:
        period = self.store.find(period_id_for(month))
        return period.closed_at if isinstance(period, Period) else None
