"""What a command answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import Recording


@dataclass(frozen=True)
class Outcome:
    """``result`` as first stored; ``created`` is False when a duplicate was replayed;
    ``position`` is the notification id of the last stored event, for read-your-writes."""

    result: dict[str, Any]
    created: bool
    position: int | None = None


def position_of(recordings: Sequence[Recording]) -> int | None:
    ids = [r.notification.id for r in recordings if r.notification is not None]
    return max(ids) if ids else None
