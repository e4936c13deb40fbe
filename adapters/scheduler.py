"""Scheduled and device work run in-process, for the embedded default (no broker).

The same jobs the Celery beat schedules (``adapters/celery_app.py``): poll each site at
its interval, run the enforcement policy, carry out due commands, end lapsed keep-power.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

log = logging.getLogger(__name__)

KEEP_POWER_CHECK_S = 30.0
PAYMENT_SYNC_S = 60.0


class InProcessScheduler:
    def __init__(self, platform) -> None:
        self.platform = platform
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="devices", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        runtime = self.platform.device_runtime()
        listen = self.platform.settings.dtu_listen_address
        if listen is not None:
            await runtime.start_listener(*listen)
        self.platform.live_runtime = runtime
        try:
            await asyncio.gather(self._poll_loop(runtime), self._command_loop(runtime),
                                 self._time_sync_loop(runtime), self._status_loop(runtime))
        finally:
            self.platform.live_runtime = None
            await runtime.close()

    async def _status_loop(self, runtime) -> None:
        """The light status poll of every meter, every PREPAID_STATUS_POLL_INTERVAL_S."""
        interval = self.platform.settings.status_poll_interval_s
        if interval <= 0:
            return
        await self._sleep(interval)  # the billing poll at start has just looked
        while not self._stop.is_set():
            try:
                report = await runtime.status_poll()
                if report.failed:
                    log.info("status poll: %s meters answered, %s did not", report.read,
                             report.failed)
            except Exception:
                log.exception("status poll failed; will try again")
            await self._sleep(interval)

    async def _time_sync_loop(self, runtime) -> None:
        """DL/T 645 broadcast time: at start, then every PREPAID_TIME_SYNC_INTERVAL_S."""
        interval = self.platform.settings.time_sync_interval_s
        while not self._stop.is_set():
            try:
                await runtime.broadcast_time()
            except Exception:
                log.exception("time sync failed; will try again")
            await self._sleep(interval)

    async def _poll_loop(self, runtime) -> None:
        last_poll: dict[str, float] = {}
        while not self._stop.is_set():
            try:
                sites = await asyncio.to_thread(self.platform.metering_queries.list_sites)
                for site in sites:
                    due = last_poll.get(site["id"], 0.0) + site["poll_interval_s"]
                    if time.monotonic() >= due:
                        last_poll[site["id"]] = time.monotonic()
                        report = await runtime.poll(site["id"])
                        log.info("polled site %s: %s meters read, %s failed", site["name"],
                                 report.read, report.failed)
            except Exception:
                log.exception("polling failed; will try again")
            await self._sleep(1.0)

    async def _command_loop(self, runtime) -> None:
        last_lapse_check = last_payment_sync = 0.0
        interval = self.platform.settings.command_interval_s
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(self.platform.enforce)
                if time.monotonic() - last_lapse_check >= KEEP_POWER_CHECK_S:
                    last_lapse_check = time.monotonic()
                    await asyncio.to_thread(lapse_keep_power, self.platform)
                await asyncio.to_thread(self.platform.send_notifications)
                if time.monotonic() - last_payment_sync >= PAYMENT_SYNC_S:
                    last_payment_sync = time.monotonic()
                    await asyncio.to_thread(sync_payments, self.platform)
                await runtime.execute_due()
            except Exception:
                log.exception("device commands failed; will try again")
            await self._sleep(interval)

    async def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < end:
            await asyncio.sleep(min(0.2, seconds))


def sync_payments(platform) -> dict:
    """Ask the providers about unpaid orders and pending refunds."""
    if not platform.ledger.payment_providers:
        return {}
    return platform.ledger.payments.sync_payment_orders(platform.payment_queries.pending())


def lapse_keep_power(platform) -> int:
    from uuid import UUID

    from ledger.commands import LapseKeepPower
    from ledger.relays import ENFORCEMENT

    ids = platform.device_queries.keep_power_lapsed(platform.ledger.clock())
    if not ids:
        return 0
    return platform.ledger.execute(LapseKeepPower(tuple(UUID(i) for i in ids)), ENFORCEMENT)
