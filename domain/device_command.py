"""A command to a meter, and its life: issued, sent, acknowledged, failed (retried with
backoff), given up. Its id is fixed by its cause, so a policy that runs again, or a
request that is retried, can never issue the same command twice."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidRequest

COMMAND_NAMESPACE = uuid5(NAMESPACE_URL, "prepaid-ledger/device-command")
ACTIONS = ("trip", "close", "keep_power", "release_keep_power", "restore_prepaid",
           "sync_tariff", "sync_thresholds", "read_now")
ISSUED, SENT, ACKNOWLEDGED, FAILED, GIVEN_UP = ("issued", "sent", "acknowledged", "failed",
                                                "given_up")
FINAL = (ACKNOWLEDGED, GIVEN_UP)
DEFAULT_MAX_ATTEMPTS = 8
BACKOFF_FIRST_S = 5
BACKOFF_MAX_S = 600


def command_id_for(meter_id: UUID, action: str, cause: str) -> UUID:
    return uuid5(COMMAND_NAMESPACE, f"{meter_id}/{action}/{cause}")


def backoff_after(attempt: int) -> timedelta:
    """5 s, 10 s, 20 s, ... at most 10 minutes between tries."""
    return timedelta(seconds=min(BACKOFF_FIRST_S * 2 ** (attempt - 1), BACKOFF_MAX_S))


class DeviceCommand(Aggregate):
    @event("Issued")
    def __init__(self, meter_id: UUID, meter_no: str, gateway_id: UUID | None, action: str,
                 reason: str | None, cause: str, payload: dict, issued_at: datetime,
                 actor: dict, max_attempts: int) -> None:
        self.meter_id = meter_id
        self.meter_no = meter_no
        self.gateway_id = gateway_id
        self.action = action
        self.reason = reason
        self.cause = cause
        self.payload = payload
        self.issued_at = issued_at
        self.actor = actor
        self.max_attempts = max_attempts
        self.status = ISSUED
        self.attempts = 0
        self.next_attempt_at: datetime | None = issued_at
        self.last_error: str | None = None

    @classmethod
    def issue(cls, *, meter_id: UUID, meter_no: str, gateway_id: UUID | None, action: str,
              reason: str | None, cause: str, payload: dict[str, Any], issued_at: datetime,
              actor: dict, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> DeviceCommand:
        if action not in ACTIONS:
            raise InvalidRequest(f"action must be one of {', '.join(ACTIONS)}")
        return cls._create(cls.Issued, id=command_id_for(meter_id, action, cause),
                           meter_id=meter_id, meter_no=meter_no, gateway_id=gateway_id,
                           action=action, reason=reason, cause=cause, payload=payload,
                           issued_at=issued_at, actor=actor, max_attempts=max_attempts)

    @property
    def done(self) -> bool:
        return self.status in FINAL

    def due(self, now: datetime) -> bool:
        return not self.done and self.next_attempt_at is not None and self.next_attempt_at <= now

    def sent(self, counter: int | None, at: datetime) -> None:
        assert not self.done
        self._sent(attempt=self.attempts + 1, counter=counter, at=at)

    @event("Sent")
    def _sent(self, attempt: int, counter: int | None, at: datetime) -> None:
        self.attempts = attempt
        self.status = SENT
        self.next_attempt_at = None

    @event("Acknowledged")
    def acknowledge(self, at: datetime, observed: dict) -> None:
        self.status = ACKNOWLEDGED
        self.next_attempt_at = None

    def fail(self, error: str, at: datetime) -> None:
        """A try failed: retry after a backoff, or give up after the last try."""
        if self.attempts >= self.max_attempts:
            self._given_up(reason=f"no confirmation after {self.attempts} tries: {error}",
                           at=at)
        else:
            self._failed(attempt=self.attempts, error=error,
                         retry_at=at + backoff_after(max(self.attempts, 1)))

    @event("Failed")
    def _failed(self, attempt: int, error: str, retry_at: datetime) -> None:
        self.status = FAILED
        self.last_error = error
        self.next_attempt_at = retry_at

    @event("GivenUp")
    def _given_up(self, reason: str, at: datetime) -> None:
        self.status = GIVEN_UP
        self.last_error = reason
        self.next_attempt_at = None

    def unreachable(self, error: str, at: datetime) -> None:
        """The meter could not be reached at all: that counts as a try too."""
        self._sent(attempt=self.attempts + 1, counter=None, at=at)
        self.fail(error, at)
