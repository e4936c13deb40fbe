"""Celery: the production worker and beat for scheduled and device work.

Run a worker with ``prepaid worker`` (or ``celery -A adapters.celery_app worker``) and one
beat with ``prepaid beat``, both with ``PREPAID_BROKER_URL`` (Redis or RabbitMQ).
Polling is sharded by gateway: ``poll_gateway`` tasks go to the queue
``<queue>.gateways.<n>`` with ``n = gateway id mod PREPAID_CELERY_GATEWAY_SHARDS``, so
workers can split the gateways between them (``-Q prepaid.gateways.0,prepaid.gateways.1``);
a worker started without ``-Q`` takes every queue.

Tasks are thin: they call one method of the platform. Each worker process builds its
own platform (connections, group committer) on first use.
"""

from __future__ import annotations

import asyncio
import logging
import time
from uuid import UUID

from celery import Celery

from ledger.config import Settings

log = logging.getLogger(__name__)
BEAT_POLL_CHECK_S = 60.0
BEAT_ENFORCE_S = 5.0
BEAT_COMMANDS_S = 2.0
BEAT_KEEP_POWER_S = 30.0
BEAT_PAYMENTS_S = 60.0

settings = Settings()
QUEUE = settings.celery_queue
app = Celery("prepaid", broker=settings.broker_url or "memory://",
             backend=settings.broker_url if settings.broker_url and
             settings.broker_url.startswith("redis") else None)
app.conf.update(
    task_default_queue=QUEUE,
    task_acks_late=True,  # a task lost with its worker runs again (every task is idempotent)
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    timezone="UTC",
    beat_schedule={
        "poll-due-sites": {"task": "prepaid.poll_due_sites", "schedule": BEAT_POLL_CHECK_S},
        "enforce": {"task": "prepaid.enforce", "schedule": BEAT_ENFORCE_S},
        "execute-commands": {"task": "prepaid.execute_commands", "schedule": BEAT_COMMANDS_S},
        "lapse-keep-power": {"task": "prepaid.lapse_keep_power",
                             "schedule": BEAT_KEEP_POWER_S},
        "sync-payments": {"task": "prepaid.sync_payments", "schedule": BEAT_PAYMENTS_S},
        "time-sync": {"task": "prepaid.time_sync", "schedule": settings.time_sync_interval_s},
        **({"status-poll": {"task": "prepaid.status_poll",
                            "schedule": settings.status_poll_interval_s}}
           if settings.status_poll_interval_s > 0 else {}),
    },
)

_platform = None


def platform():
    global _platform
    if _platform is None:
        from bootstrap import Platform

        _platform = Platform(Settings())
    return _platform


def gateway_queue(gateway_id: str) -> str:
    return f"{QUEUE}.gateways.{UUID(gateway_id).int % settings.celery_gateway_shards}"


def all_queues() -> list[str]:
    return [QUEUE] + [f"{QUEUE}.gateways.{n}" for n in range(settings.celery_gateway_shards)]


_live = None  # (loop, runtime): the worker's lasting device runtime, with PREPAID_DTU_LISTEN


def _live_runtime():
    """With PREPAID_DTU_LISTEN, DTUs stay connected to this worker between tasks: one
    lasting event loop (a thread) holds the listener and the runtime that uses them."""
    global _live
    if _live is None:
        import threading

        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, name="devices", daemon=True).start()
        runtime = platform().device_runtime()
        listen = settings.dtu_listen_address
        asyncio.run_coroutine_threadsafe(runtime.start_listener(*listen), loop).result(30)
        platform().live_runtime = runtime
        _live = (loop, runtime)
    return _live


def _run(coroutine_factory):
    """Each task run gets its own event loop and its own connections to the gateways
    (with PREPAID_DTU_LISTEN: the worker's lasting loop, where its DTUs are connected)."""
    if settings.dtu_listen_address is not None:
        loop, runtime = _live_runtime()
        return asyncio.run_coroutine_threadsafe(coroutine_factory(runtime), loop).result()

    async def main():
        runtime = platform().device_runtime()
        try:
            return await coroutine_factory(runtime)
        finally:
            await runtime.close()
    return asyncio.run(main())


@app.task(name="prepaid.poll_due_sites")
def poll_due_sites() -> list[str]:
    """Send a poll for every site whose interval has come round since the last check."""
    now = time.time()
    started = []
    p = platform()
    p.catch_up()
    for site in p.metering_queries.list_sites():
        interval = site["poll_interval_s"]
        if int(now // interval) != int((now - BEAT_POLL_CHECK_S) // interval):
            poll_site.delay(site["id"])
            started.append(site["id"])
    return started


@app.task(name="prepaid.poll_site")
def poll_site(site_id: str) -> int:
    gateways = platform().device_queries.gateways(site_id)
    for gateway in gateways:
        poll_gateway.apply_async((gateway["id"],), queue=gateway_queue(gateway["id"]))
    return len(gateways)


@app.task(name="prepaid.poll_gateway")
def poll_gateway(gateway_id: str) -> dict:
    from adapters.device_runtime import describe

    platform().catch_up()
    report = _run(lambda runtime: runtime.poll(gateway_ids=[gateway_id]))
    return describe(report)


@app.task(name="prepaid.enforce")
def enforce() -> None:
    platform().enforce()
    platform().send_notifications()


@app.task(name="prepaid.execute_commands")
def execute_commands() -> int:
    platform().enforce()
    return _run(lambda runtime: runtime.execute_due())


@app.task(name="prepaid.lapse_keep_power")
def lapse_keep_power() -> int:
    from adapters.scheduler import lapse_keep_power as lapse

    return lapse(platform())


@app.task(name="prepaid.sync_payments")
def sync_payments() -> dict:
    from adapters.scheduler import sync_payments as sync

    platform().catch_up()
    return sync(platform())


@app.task(name="prepaid.time_sync")
def time_sync() -> int:
    """DL/T 645 broadcast time to every DL/T 645 bus."""
    platform().catch_up()
    return _run(lambda runtime: runtime.broadcast_time())


@app.task(name="prepaid.status_poll")
def status_poll() -> int:
    """The light status poll, one task per gateway on its gateway queue."""
    gateways = platform().device_queries.gateways()
    for gateway in gateways:
        status_poll_gateway.apply_async((gateway["id"],), queue=gateway_queue(gateway["id"]))
    return len(gateways)


@app.task(name="prepaid.status_poll_gateway")
def status_poll_gateway(gateway_id: str) -> dict:
    from adapters.device_runtime import describe

    platform().catch_up()
    return describe(_run(lambda runtime: runtime.status_poll(gateway_ids=[gateway_id])))
