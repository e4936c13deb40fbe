"""Balance alerts: warned once per downward crossing, re-armed with hysteresis; and the
notifications they cause, kept in an outbox until sent."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

ALERTS_NAMESPACE = uuid5(NAMESPACE_URL, "prepaid-ledger/balance-alerts")
NOTIFICATION_NAMESPACE = uuid5(NAMESPACE_URL, "prepaid-ledger/notification")
LEVELS = ("alarm1", "alarm2", "arrears")
NOTIFY_MAX_ATTEMPTS = 6


def alerts_id_for(account_id: UUID, wallet: str) -> UUID:
    return uuid5(ALERTS_NAMESPACE, f"{account_id}/{wallet}")


def notification_id_for(alert_key: str, channel: str) -> UUID:
    return uuid5(NOTIFICATION_NAMESPACE, f"{alert_key}/{channel}")


class BalanceAlerts(Aggregate):
    """Which warnings of one wallet have fired and not yet been re-armed."""

    @event("Started")
    def __init__(self, account_id: UUID, wallet: str) -> None:
        self.account_id = account_id
        self.wallet = wallet
        self.fired: list[str] = []
        self.thresholds: dict[str, int] | None = None  # None: the site-wide defaults

    @classmethod
    def start(cls, account_id: UUID, wallet: str) -> BalanceAlerts:
        return cls._create(cls.Started, id=alerts_id_for(account_id, wallet),
                           account_id=account_id, wallet=wallet)

    @event("ThresholdsSet")
    def set_thresholds(self, alarm1_fen: int, alarm2_fen: int, actor: dict) -> None:
        self.thresholds = {"alarm1": alarm1_fen, "alarm2": alarm2_fen}

    def observe(self, balance_fen: int, thresholds: dict[str, int], hysteresis_fen: int,
                cause: str, days_left: int | None) -> list[tuple[str, str]]:
        """Fire the levels the balance fell to, re-arm those it rose well above.

        Returns (level, key) of each alert raised; the key names the event."""
        raised = []
        thresholds = self.thresholds or thresholds
        for level in LEVELS:
            threshold = 0 if level == "arrears" else thresholds[level]
            below = balance_fen <= 0 if level == "arrears" else balance_fen < threshold
            if below and level not in self.fired:
                self._raised(level=level, balance_fen=balance_fen, threshold_fen=threshold,
                             days_left=days_left, cause=cause)
                raised.append((level, f"{self.id}/{self.version}/{level}"))
            elif level in self.fired and balance_fen > threshold + hysteresis_fen:
                self._rearmed(level=level, balance_fen=balance_fen)
        return raised

    @event("AlertRaised")
    def _raised(self, level: str, balance_fen: int, threshold_fen: int,
                days_left: int | None, cause: str) -> None:
        self.fired.append(level)

    @event("AlertRearmed")
    def _rearmed(self, level: str, balance_fen: int) -> None:
        self.fired.remove(level)


class Notification(Aggregate):
    """One message on one channel. Its id is fixed by the alert, so deciding twice queues
    it once; the sender passes the id on as an idempotency key."""

    @event("Queued")
    def __init__(self, alert_key: str, channel: str, account_id: UUID, recipient: str | None,
                 text: str, level: str, queued_at: datetime) -> None:
        self.alert_key = alert_key
        self.channel = channel
        self.account_id = account_id
        self.recipient = recipient
        self.text = text
        self.level = level
        self.status = "queued"
        self.attempts = 0
        self.next_attempt_at: datetime | None = queued_at

    @classmethod
    def queue(cls, *, alert_key: str, channel: str, account_id: UUID, recipient: str | None,
              text: str, level: str, queued_at: datetime) -> Notification:
        return cls._create(cls.Queued, id=notification_id_for(alert_key, channel),
                           alert_key=alert_key, channel=channel, account_id=account_id, recipient=recipient,
                           text=text, level=level, queued_at=queued_at)

    @event("Sent")
    def sent(self, at: datetime) -> None:
        self.status = "sent"
        self.attempts += 1
        self.next_attempt_at = None

    def failed(self, error: str, at: datetime) -> None:
        if self.attempts + 1 >= NOTIFY_MAX_ATTEMPTS:
            self._given_up(error=error, at=at)
        else:
            self._failed(error=error, retry_at=at + timedelta(
                seconds=30 * 2 ** self.attempts))

    @event("Failed")
    def _failed(self, error: str, retry_at: datetime) -> None:
        self.attempts += 1
        self.status = "failed"
        self.next_attempt_at = retry_at

    @event("GivenUp")
    def _given_up(self, error: str, at: datetime) -> None:
        self.attempts += 1
        self.status = "given_up"
        self.next_attempt_at = None
