"""A clock for tests: it says the time it was given until the test moves it."""

from __future__ import annotations

from datetime import datetime


class FrozenClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now
