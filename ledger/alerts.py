"""Balance alerts and their notifications.

What the cut-off policy decided about arrears (an account's cut-off book) is read through
a port given to the constructor, so that alerts need not know the cut-off feature.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol
from uuid import UUID, uuid4

from domain.account import Account
from domain.alerts import BalanceAlerts, Notification, alerts_id_for
from domain.cutoff import AccountCutoff
from ledger.clock import Clock
from ledger.commands import (
    AlertNotFound,
    Command,
    Handler,
    NotificationContext,
    ObservationContext,
    ObserveBalances,
    RecordNotification,
    SetAlertThresholds,
    ThresholdContext,
)
from ledger.core.bus import CommandBus
from ledger.core.store import EventStore
from ledger.outcome import Outcome
from ledger.relays import site_zone

__all__ = ["DEFAULT_ALERT_HYSTERESIS_FEN", "DEFAULT_ALERT_THRESHOLDS_FEN",
           "DEFAULT_NOTIFY_CHANNELS", "AlertNotFound", "AlertService", "CutoffReader"]


# Who observes balances and records notifications' outcomes.
POLICY = {"kind": "policy", "id": "alerts"}
DEFAULT_ALERT_THRESHOLDS_FEN = {"alarm1": 5000, "alarm2": 2000}
DEFAULT_ALERT_HYSTERESIS_FEN = 500
DEFAULT_NOTIFY_CHANNELS = ("log",)


class CutoffReader(Protocol):
    """An account's cut-off book: what enforcement decided about its arrears."""

    def account_cutoff(self, account_id: UUID) -> AccountCutoff: ...


class AlertService:
    """Balance alerts and notifications, over the event store and the command bus."""

    def __init__(self, store: EventStore, bus: CommandBus, *, clock: Clock,
                 cutoff: CutoffReader, thresholds_fen: Mapping[str, int] | None = None,
                 hysteresis_fen: int = DEFAULT_ALERT_HYSTERESIS_FEN,
                 notify_channels: tuple[str, ...] = DEFAULT_NOTIFY_CHANNELS) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.cutoff = cutoff
        # The levels a wallet without thresholds of its own is alerted at.
        self.thresholds_fen = dict(thresholds_fen or DEFAULT_ALERT_THRESHOLDS_FEN)
        self.hysteresis_fen = hysteresis_fen
        self.notify_channels = tuple(notify_channels)

    def handlers(self) -> Mapping[type[Command], Handler]:
        """The commands this service carries out (``Ledger.execute`` routes them here)."""
        return {ObserveBalances: self.carry_out_observe_balances,
                SetAlertThresholds: self.carry_out_set_alert_thresholds,
                RecordNotification: self.carry_out_record_notification}

    def observe_balances(self,
                         observations: list[tuple[UUID, str, int, str, int | None]]) -> int:
        """(account, wallet, balance, cause, days_left): raise what crossed, queue the
        notifications; returns the number of alerts raised."""
        return self.carry_out_observe_balances(ObserveBalances.of(observations), POLICY)

    def carry_out_observe_balances(self, command: ObserveBalances, actor: dict) -> int:
        """One decision per observation, all handed to the bus at once; one context for
        the batch. Returns the number of alerts raised."""
        ctx = ObservationContext(self.clock(), self.thresholds_fen, self.hysteresis_fen,
                                 self.notify_channels, self._arrears_text)
        outcomes = self.bus.write_many([
            (uuid4(), "alerts", lambda load, o=observation: o.decide(load, ctx))
            for observation in command.observations])
        return sum(o.result["raised"] for o in outcomes if isinstance(o, Outcome))

    def _arrears_text(self, account: Account, wallet: str) -> str | None:
        """What the cut-off policy decided about these arrears (enforcement runs first):
        in grace until when, or held until a friendly window ends."""
        found = self.cutoff.account_cutoff(account.id).arrears_of(wallet)
        if not found or found.get("action") not in ("grace", "hold"):
            return None
        if found["until"] is None:
            return "is used up: in grace within the credit limit"
        zone = site_zone(self.store.find, account.site_id)
        until = datetime.fromisoformat(found["until"]).astimezone(zone)
        when = f"{until:%Y-%m-%d %H:%M} (UTC{until:%z})"
        if found["action"] == "grace":
            return f"is used up: in grace until {when}"
        return f"is used up: power will be cut at {when}, when the friendly hours end"

    def thresholds_of(self, account_id: UUID, wallet: str) -> dict[str, int]:
        """The levels a wallet is alerted at: its own, or the ones for every wallet."""
        alerts = self.store.find(alerts_id_for(account_id, wallet))
        own = alerts.thresholds if isinstance(alerts, BalanceAlerts) else None
        return dict(own or self.thresholds_fen)

    def set_alert_thresholds(self, account_id: UUID, wallet: str, alarm1_fen: int,
                             alarm2_fen: int, actor: dict) -> BalanceAlerts:
        return self.carry_out_set_alert_thresholds(
            SetAlertThresholds(account_id, wallet, alarm1_fen, alarm2_fen), actor)

    def carry_out_set_alert_thresholds(self, command: SetAlertThresholds,
                                       actor: dict) -> BalanceAlerts:
        command.check()
        ctx = ThresholdContext(actor)
        self.bus.write(command.account_id, uuid4(), "alert-thresholds",
                       lambda load: command.decide(load, ctx))
        return self.store.find(alerts_id_for(command.account_id, command.wallet))

    def record_notification(self, notification_id: UUID, ok: bool,
                            error: str | None = None) -> Notification:
        return self.carry_out_record_notification(
            RecordNotification(notification_id, ok, error), POLICY)

    def carry_out_record_notification(self, command: RecordNotification,
                                      actor: dict) -> Notification:
        ctx = NotificationContext(self.clock())
        self.bus.write(command.notification_id, uuid4(), "notification",
                       lambda load: command.decide(load, ctx))
        return self.store.find(command.notification_id)
