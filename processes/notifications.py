"""Sending what the notification outbox holds: each due notification once, through its
channel's notifier, its outcome recorded on the ledger."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from ledger.commands import RecordNotification

MAX_ERROR_CHARS = 500  # of a failed send's recorded error
SENDER = {"kind": "policy", "id": "notifications"}


class NotificationSender:
    def __init__(self, ledger: Any, due: Callable[[datetime], list[str]],
                 notifiers: Mapping[str, Any]) -> None:
        self.ledger = ledger
        self.due = due
        self.notifiers = notifiers

    def send_due(self) -> int:
        """Send what is due; a send repeated after a crash carries the same idempotency
        key (the notification's id). Returns how many were sent."""
        sent = 0
        for notification_id in self.due(self.ledger.clock()):
            notification = self.ledger.find(UUID(notification_id))
            notifier = self.notifiers.get(notification.channel)
            try:
                if notifier is None:
                    raise RuntimeError(f"channel {notification.channel} is not configured")
                notifier.send(notification_id, notification.recipient, notification.text)
            except Exception as error:
                self.ledger.execute(RecordNotification(notification.id, False,
                                                       str(error)[:MAX_ERROR_CHARS]), SENDER)
                continue
            self.ledger.execute(RecordNotification(notification.id, True), SENDER)
            sent += 1
        return sent
