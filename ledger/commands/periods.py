"""Period commands: closing a month, after which its reports stay as they stood."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar
from uuid import UUID

from domain.errors import DomainError
from domain.period import Period, period_id_for
from ledger.commands.base import Command
from ledger.core.types import Loader


class PeriodNotOver(DomainError):
    code = "period-not-over"


class PeriodNotFound(DomainError):
    """A month not closed yet: what the loader raises, never answered to a caller."""

    code = "period-not-found"


@dataclass(frozen=True)
class PeriodContext:
    """Who closes the month, and when (the close is refused before the month ends)."""

    actor: dict
    now: datetime


@dataclass(frozen=True)
class ClosePeriod(Command):
    action: ClassVar[str] = "close_period"
    repeat: ClassVar[str] = "answers the first close of the month"
    month: str
    starts_at: datetime
    ends_at: datetime

    def period_id(self) -> UUID:
        return period_id_for(self.month)

    def decide(self, load: Loader, ctx: PeriodContext) -> tuple[list[Period], Period]:
        """The month closed once; closing it again answers the first close."""
        try:
            return [], load(self.period_id(), Period, PeriodNotFound)
        except PeriodNotFound:
            pass
        if ctx.now < self.ends_at:
            raise PeriodNotOver(f"{self.month} is not over yet")
        period = Period.close(month=self.month, starts_at=self.starts_at,
                              ends_at=self.ends_at, closed_at=ctx.now, actor=ctx.actor)
        return [period], period
