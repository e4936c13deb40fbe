"""Notifications refused before their signature verified: counted, logged now and then,
never stored.

Anyone can POST to the notification paths. What they send is not evidence of anything,
so it must not grow the permanent event log; the count is what an operator needs (a
rising one means someone is probing, or a key is misconfigured).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

log = logging.getLogger("prepaid.payments")

LOG_INTERVAL_S = 60.0  # at most one line per provider in this time


class UnverifiedNotifications:
    """Thread-safe counts by provider and reason (reasons are a fixed set of phrases,
    never text taken from the request, so the counts stay small)."""

    def __init__(self, log_interval_s: float = LOG_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log_interval_s = log_interval_s
        self.clock = clock
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._last_logged: dict[str, float] = {}
        self._unlogged: Counter[str] = Counter()
        # Called with (provider, reason) for each refusal (metrics).
        self.listeners: list[Callable[[str, str], None]] = []

    def record(self, provider: str, reason: str, detail: str = "") -> None:
        now = self.clock()
        with self._lock:
            self._counts[(provider, reason)] += 1
            self._unlogged[provider] += 1
            for listener in self.listeners:
                listener(provider, reason)
            last = self._last_logged.get(provider)
            if last is not None and now - last < self.log_interval_s:
                return
            self._last_logged[provider] = now
            count, self._unlogged[provider] = self._unlogged[provider], 0
        log.warning("refused %d %s notification(s) whose signature did not verify "
                    "(not recorded); latest: %s%s", count, provider, reason,
                    f" {detail[:60]!r}" if detail else "")

    def total(self, provider: str | None = None) -> int:
        with self._lock:
            return sum(n for (p, _), n in self._counts.items()
                       if provider is None or p == provider)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """``{provider: {reason: count}}`` since the process started."""
        with self._lock:
            found: dict[str, dict[str, int]] = {}
            for (provider, reason), count in sorted(self._counts.items()):
                found.setdefault(provider, {})[reason] = count
            return found


# The serving process's counts (read by the notification routes and, later, metrics).
unverified_notifications = UnverifiedNotifications()
