"""Balance alerts and their notifications.

What the cut-off policy decided about arrears (an account's cut-off book) is read through
a port given to the constructor, so that alerts need not know the cut-off feature.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID, uuid4

from domain.account import Account
from domain.alerts import BalanceAlerts, Notification, alerts_id_for
from domain.cutoff import AccountCutoff
from domain.errors import AccountNotFound, InvalidRequest, NotFound
from domain.money import fen_to_yuan_text
from ledger.commands import Command, Handler
from ledger.clock import Clock
from ledger.core.bus import CommandBus
from ledger.core.store import EventStore
from ledger.core.types import Loader
from ledger.relays import site_zone


LEVEL_TEXT = {"alarm1": "is getting low", "alarm2": "is very low",
              "arrears": "is used up: power will be cut"}


class AlertNotFound(NotFound):
    code = "notification-not-found"


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
        return {}

    def observe_balances(self,
                         observations: list[tuple[UUID, str, int, str, int | None]]) -> int:
        """(account, wallet, balance, cause, days_left): raise what crossed, queue the
        notifications; returns the number of alerts raised."""
        now = self.clock()
        raised_count = []

        def decide_for(account_id: UUID, wallet: str, balance: int, cause: str,
                       days_left: int | None):
            def decide(load: Loader):
                alerts = _alerts(load, account_id, wallet)
                account = load(account_id, Account, AccountNotFound)
                raised = alerts.observe(balance, self.thresholds_fen, self.hysteresis_fen,
                                        cause, days_left)
                out: list[Any] = [alerts]
                for level, alert_key in raised:
                    said = LEVEL_TEXT[level]
                    if level == "arrears":
                        said = self._arrears_text(account, wallet) or said
                    text = (f"{account.name}: the {wallet} balance {said} "
                            f"({fen_to_yuan_text(balance)} yuan"
                            + (f", about {days_left} days left)" if days_left is not None
                               else ")"))
                    for channel in self.notify_channels:
                        out.append(Notification.queue(
                            alert_key=alert_key, channel=channel,
                            account_id=account_id, recipient=account.phone, text=text,
                            level=level, queued_at=now))
                    raised_count.append(level)
                return out, {}
            return decide

        self.bus.write_many([(uuid4(), "alerts", decide_for(*o)) for o in observations])
        return len(raised_count)

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

    def set_alert_thresholds(self, account_id: UUID, wallet: str, alarm1_fen: int,
                             alarm2_fen: int, actor: dict) -> BalanceAlerts:
        if not alarm1_fen >= alarm2_fen > 0:
            raise InvalidRequest("alarm1 must be at least alarm2, and both above zero")
        self.store.load(account_id, Account, AccountNotFound)

        def decide(load: Loader):
            alerts = _alerts(load, account_id, wallet)
            alerts.set_thresholds(alarm1_fen=alarm1_fen, alarm2_fen=alarm2_fen, actor=actor)
            return [alerts], {}

        self.bus.write(account_id, uuid4(), "alert-thresholds", decide)
        return self.store.find(alerts_id_for(account_id, wallet))

    def record_notification(self, notification_id: UUID, ok: bool,
                            error: str | None = None) -> Notification:
        now = self.clock()

        def decide(load: Loader):
            notification = load(notification_id, Notification, AlertNotFound)
            if notification.status in ("sent", "given_up"):
                return [], {}
            if ok:
                notification.sent(at=now)
            else:
                notification.failed(error or "failed", now)
            return [notification], {}

        self.bus.write(notification_id, uuid4(), "notification", decide)
        return self.store.find(notification_id)


def _alerts(load: Loader, account_id: UUID, wallet: str) -> BalanceAlerts:
    """A wallet's alert state, started on first use."""
    try:
        return load(alerts_id_for(account_id, wallet), BalanceAlerts, NotFound)
    except NotFound:
        return BalanceAlerts.start(account_id, wallet)
