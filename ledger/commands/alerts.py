"""Alert commands: observing balances (the hot path: one decision per account's wallet),
an account's own alarm levels, and a notification's outcome."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from domain.account import Account
from domain.alerts import BalanceAlerts, Notification, alerts_id_for
from domain.errors import AccountNotFound, InvalidRequest, NotFound
from domain.money import fen_to_yuan_text
from ledger.commands.base import Command
from ledger.core.types import Loader

LEVEL_TEXT = {"alarm1": "is getting low", "alarm2": "is very low",
              "arrears": "is used up: power will be cut"}


class AlertNotFound(NotFound):
    code = "notification-not-found"


def alerts_of(load: Loader, account_id: UUID, wallet: str) -> BalanceAlerts:
    """A wallet's alert state, started on first use."""
    try:
        return load(alerts_id_for(account_id, wallet), BalanceAlerts, NotFound)
    except NotFound:
        return BalanceAlerts.start(account_id, wallet)


# What the cut-off policy decided about a wallet's arrears, in words (None: nothing more
# to say than LEVEL_TEXT does).
DescribeArrears = Callable[[Account, str], "str | None"]


@dataclass(frozen=True)
class ObservationContext:
    """One per batch of observations: the time, the service's levels and channels, and
    how arrears are described. The description is asked only when arrears are raised
    (rare): read for every observation beforehand, it would cost the hot path a read of
    the cut-off book per account."""

    now: datetime
    thresholds_fen: Mapping[str, int]
    hysteresis_fen: int
    notify_channels: tuple[str, ...]
    describe_arrears: DescribeArrears


@dataclass(frozen=True)
class ObserveBalance(Command):
    """One wallet's balance after a money event: raise the levels it crossed and queue a
    notification per channel for each."""

    action: ClassVar[str] = "observe_balance"
    # Decided only as one item of an ObserveBalances, which the ledger carries out.
    part_of: ClassVar[str] = "ObserveBalances"
    account_id: UUID
    wallet: str
    balance_fen: int
    cause: str
    days_left: int | None = None

    def target(self) -> str:
        return str(self.account_id)

    def decide(self, load: Loader, ctx: ObservationContext) -> tuple[list[Any], dict[str, Any]]:
        """Answers how many alerts were raised."""
        account_id, wallet, balance, days_left = \
            self.account_id, self.wallet, self.balance_fen, self.days_left
        alerts = alerts_of(load, account_id, wallet)
        account = load(account_id, Account, AccountNotFound)
        raised = alerts.observe(balance, ctx.thresholds_fen, ctx.hysteresis_fen, self.cause,
                                days_left)
        out: list[Any] = [alerts]
        for level, alert_key in raised:
            said = LEVEL_TEXT[level]
            if level == "arrears":
                said = ctx.describe_arrears(account, wallet) or said
            text = (f"{account.name}: the {wallet} balance {said} "
                    f"({fen_to_yuan_text(balance)} yuan"
                    + (f", about {days_left} days left)" if days_left is not None else ")"))
            for channel in ctx.notify_channels:
                out.append(Notification.queue(
                    alert_key=alert_key, channel=channel, account_id=account_id,
                    recipient=account.phone, text=text, level=level, queued_at=ctx.now))
        return out, {"raised": len(raised)}


@dataclass(frozen=True)
class ObserveBalances(Command):
    """Many observations at once (a batch of money events): one decision each."""

    action: ClassVar[str] = "observe_balances"
    repeat: ClassVar[str] = ("raises nothing more: a level is raised once until the balance climbs "
                              "back past it")
    observations: tuple[ObserveBalance, ...]

    @classmethod
    def of(cls, rows: Iterable[tuple[UUID, str, int, str, int | None]]) -> ObserveBalances:
        """From (account, wallet, balance, cause, days_left) rows."""
        return cls(tuple(ObserveBalance(*row) for row in rows))


@dataclass(frozen=True)
class ThresholdContext:
    actor: dict


@dataclass(frozen=True)
class SetAlertThresholds(Command):
    """An account's own alarm1 and alarm2 levels for a wallet."""

    action: ClassVar[str] = "set_alert_thresholds"
    repeat: ClassVar[str] = "sets the same levels again"
    account_id: UUID
    wallet: str
    alarm1_fen: int
    alarm2_fen: int

    def target(self) -> str:
        return str(self.account_id)

    def check(self) -> None:
        if not self.alarm1_fen >= self.alarm2_fen > 0:
            raise InvalidRequest("alarm1 must be at least alarm2, and both above zero")

    def decide(self, load: Loader, ctx: ThresholdContext) -> tuple[list[Any], dict[str, Any]]:
        load(self.account_id, Account, AccountNotFound)
        alerts = alerts_of(load, self.account_id, self.wallet)
        alerts.set_thresholds(alarm1_fen=self.alarm1_fen, alarm2_fen=self.alarm2_fen,
                              actor=ctx.actor)
        return [alerts], {}


@dataclass(frozen=True)
class NotificationContext:
    now: datetime


@dataclass(frozen=True)
class RecordNotification(Command):
    """A notification sent, or failed (retried later, or given up after the last try);
    once sent or given up it stays so."""

    action: ClassVar[str] = "record_notification"
    repeat: ClassVar[str] = "records nothing more once the notification is sent or given up"
    notification_id: UUID
    ok: bool
    error: str | None = None

    def target(self) -> str:
        return str(self.notification_id)

    def decide(self, load: Loader,
               ctx: NotificationContext) -> tuple[list[Any], dict[str, Any]]:
        notification = load(self.notification_id, Notification, AlertNotFound)
        if notification.status in ("sent", "given_up"):
            return [], {}
        if self.ok:
            notification.sent(at=ctx.now)
        else:
            notification.failed(self.error or "failed", ctx.now)
        return [notification], {}
