"""Prometheus metrics (``GET /metrics``).

Two kinds:

* Counted in the process as things happen: requests (latency per route template and
  status), the group committer's batches, polling cycles and gateway reads, refused
  payment notifications. With ``prepaid serve --workers N`` each worker writes them to
  files in ``PROMETHEUS_MULTIPROC_DIR`` (the platform sets one up) and the answering
  worker adds them all up.
* Read from the database when scraped: each read model's and process's position and lag,
  meters online and offline, device commands by status, the notification outbox, payment
  orders and refused notifications, each gateway's last read success rate. These are the
  same whichever process answers.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from adapters import collection
from projections.alerts.tables import notifications
from projections.devices.tables import device_commands
from projections.metering.tables import meters
from projections.payments.tables import payment_orders, rejected_notifications

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
disable_created_metrics()  # no `_created` series: nothing here is reset but by a restart

REQUEST_SECONDS = Histogram(
    "prepaid_http_request_duration_seconds", "HTTP requests by route template and status",
    ["method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
COMMIT_BATCHES = Counter("prepaid_group_commit_batches",
                         "batches stored by the group committer")
COMMIT_COMMANDS = Counter("prepaid_group_commit_commands",
                          "commands stored by the group committer")
COMMIT_BATCH_SIZE = Histogram("prepaid_group_commit_batch_size", "commands per stored batch",
                              buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000))
COMMIT_SAVE_SECONDS = Histogram("prepaid_group_commit_save_seconds",
                                "time to store one batch (insert and flush)",
                                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                         0.5, 1, 2.5))
POLL_CYCLE_SECONDS = Histogram("prepaid_poll_cycle_seconds", "one polling cycle of a site",
                               ["site_id"],
                               buckets=(0.1, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300))
GATEWAY_READS = Counter("prepaid_gateway_reads", "meter reads per gateway by result",
                        ["gateway_id", "result"])
PAYMENT_NOTIFICATIONS = Counter("prepaid_payment_notifications",
                                "provider notifications refused before their signature "
                                "verified (never stored)", ["provider", "outcome", "reason"])


def observe_batch(commands: int, seconds: float) -> None:
    COMMIT_BATCHES.inc()
    COMMIT_COMMANDS.inc(commands)
    COMMIT_BATCH_SIZE.observe(commands)
    COMMIT_SAVE_SECONDS.observe(seconds)


def observe_unverified(provider: str, reason: str) -> None:
    PAYMENT_NOTIFICATIONS.labels(provider, "unverified", reason).inc()


def poll_recorder(engine):
    """The device runtime's ``on_polled``: a poll-results row per gateway, and metrics."""

    def on_polled(site_id, started_at, gateways, results, seconds) -> None:
        POLL_CYCLE_SECONDS.labels(site_id or "all").observe(seconds)
        for gateway, (ok, bad) in zip(gateways, results):
            if ok:
                GATEWAY_READS.labels(gateway["id"], "answered").inc(len(ok))
            if bad:
                GATEWAY_READS.labels(gateway["id"], "failed").inc(len(bad))
        collection.record_cycle(engine, site_id, started_at, gateways, results, seconds)

    return on_polled


def instrument(platform) -> None:
    """Attach the counters to a platform's committers and the refusal counts (once)."""
    for committer in getattr(platform.ledger, "committers", []):
        committer.on_saved = observe_batch
    from adapters.payments.refusals import unverified_notifications

    if observe_unverified not in unverified_notifications.listeners:
        unverified_notifications.listeners.append(observe_unverified)


class PlatformCollector:
    """Gauges read from the database at scrape time."""

    def __init__(self, platform) -> None:
        self.platform = platform

    def collect(self):
        try:
            yield from self._collect()
        except Exception:  # a scrape must answer; the health checks say what is wrong
            log.exception("reading metrics from the database failed")
            up = GaugeMetricFamily("prepaid_database_up", "the database answered the scrape")
            up.add_metric([], 0)
            yield up

    def _collect(self):
        p = self.platform
        up = GaugeMetricFamily("prepaid_database_up", "the database answered the scrape")
        up.add_metric([], 1)
        yield up
        for family in lag_families(p):
            yield family
        engine = p.engines.reader
        with engine.connect() as conn:
            online = dict(conn.execute(select(meters.c.online, func.count())
                                       .where(meters.c.status == "active")
                                       .group_by(meters.c.online)).all())
            commands = dict(conn.execute(select(device_commands.c.status, func.count())
                                         .group_by(device_commands.c.status)).all())
            outbox = dict(conn.execute(select(notifications.c.status, func.count())
                                       .group_by(notifications.c.status)).all())
            orders = conn.execute(select(payment_orders.c.channel, payment_orders.c.status,
                                         func.count()).group_by(payment_orders.c.channel,
                                                                payment_orders.c.status)).all()
            refused = conn.execute(select(rejected_notifications.c.provider, func.count())
                                   .group_by(rejected_notifications.c.provider)).all()
        family = GaugeMetricFamily("prepaid_meters", "active meters online and offline",
                                   labels=["state"])
        family.add_metric(["online"], online.get(True, 0))
        family.add_metric(["offline"], online.get(False, 0))
        yield family
        family = GaugeMetricFamily("prepaid_device_commands", "device commands by status",
                                   labels=["status"])
        for status in ("issued", "sent", "acknowledged", "failed", "given_up"):
            family.add_metric([status], commands.get(status, 0))
        yield family
        given_up = GaugeMetricFamily("prepaid_device_commands_given_up",
                                     "device commands given up (no confirmation)")
        given_up.add_metric([], commands.get("given_up", 0))
        yield given_up
        family = GaugeMetricFamily("prepaid_notification_outbox",
                                   "alert notifications by status", labels=["status"])
        for status in ("queued", "sent", "failed", "given_up"):
            family.add_metric([status], outbox.get(status, 0))
        yield family
        backlog = GaugeMetricFamily("prepaid_notification_outbox_backlog",
                                    "notifications waiting to be sent (queued or retrying)")
        backlog.add_metric([], outbox.get("queued", 0) + outbox.get("failed", 0))
        yield backlog
        family = GaugeMetricFamily("prepaid_payment_orders", "payment orders by status",
                                   labels=["channel", "status"])
        for channel, status, count in orders:
            family.add_metric([channel, status], count)
        yield family
        family = GaugeMetricFamily("prepaid_payment_notifications_refused",
                                   "authentic provider notifications refused (recorded)",
                                   labels=["provider"])
        for provider, count in refused:
            family.add_metric([provider], count)
        yield family
        rate = GaugeMetricFamily("prepaid_gateway_read_success_ratio",
                                 "meters answered / polled in the gateway's last cycle",
                                 labels=["gateway_id", "gateway"])
        last = GaugeMetricFamily("prepaid_gateway_last_poll_timestamp_seconds",
                                 "when the gateway's last cycle started",
                                 labels=["gateway_id", "gateway"])
        for row in collection.latest_success(engine):
            labels = [row["gateway_id"], row["name"] or ""]
            rate.add_metric(labels, row["answered"] / row["meters"] if row["meters"] else 0)
            last.add_metric(labels, row["polled_at"].timestamp())
        yield rate
        yield last


def lags(platform) -> list[dict[str, Any]]:
    """Each read model's and process's position, and how far behind the log it is (events,
    and the age in seconds of the oldest event it has not applied)."""
    recorder = platform.ledger.recorder
    head = recorder.max_notification_id() or 0
    out = []
    processors = [("read_model", p) for p in platform.projectors] + [
        ("process", platform.enforcement), ("process", platform.alerting)]
    now = time.time()
    for kind, processor in processors:
        position = processor.position()
        behind = max(head - position, 0)
        seconds = 0.0
        if behind:
            first = recorder.select_notifications(start=position, limit=1,
                                                  inclusive_of_start=False)
            if first:
                event = platform.ledger.mapper.to_domain_event(first[0])
                seconds = max(now - event.timestamp.timestamp(), 0.0)
        out.append({"name": processor.name, "kind": kind, "position": position,
                    "head": head, "lag_events": behind, "lag_seconds": round(seconds, 3)})
    return out


def lag_families(platform):
    position = GaugeMetricFamily("prepaid_projection_position",
                                 "last event applied", labels=["name", "kind"])
    events = GaugeMetricFamily("prepaid_projection_lag_events",
                               "events in the log not yet applied", labels=["name", "kind"])
    seconds = GaugeMetricFamily("prepaid_projection_lag_seconds",
                                "age of the oldest event not yet applied",
                                labels=["name", "kind"])
    head = GaugeMetricFamily("prepaid_event_log_head", "the last event's position")
    found = lags(platform)
    for row in found:
        labels = [row["name"], row["kind"]]
        position.add_metric(labels, row["position"])
        events.add_metric(labels, row["lag_events"])
        seconds.add_metric(labels, row["lag_seconds"])
    head.add_metric([], found[0]["head"] if found else 0)
    return [head, position, events, seconds]


def render(platform) -> tuple[bytes, str]:
    """The text exposition: this process's (or all workers') counters and the gauges."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted)
    else:
        counted = REGISTRY
    gauges = CollectorRegistry(auto_describe=False)
    gauges.register(PlatformCollector(platform))
    return generate_latest(counted) + generate_latest(gauges), CONTENT_TYPE_LATEST


def prepare_multiprocess_dir() -> str | None:
    """For ``serve --workers N``: a fresh directory for the workers' metric files, set in
    the environment the workers inherit (kept when the operator set one)."""
    import shutil
    import tempfile

    path = os.environ.get(MULTIPROC_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            if name.endswith(".db"):
                os.remove(os.path.join(path, name))
        return None
    path = tempfile.mkdtemp(prefix="prepaid-metrics-")
    os.environ[MULTIPROC_ENV] = path
    import atexit

    atexit.register(shutil.rmtree, path, True)
    return path


def serve_listener(platform, listen: str):
    """``PREPAID_METRICS_LISTEN=host:port``: answer ``/metrics`` there, without a token,
    from a thread of this process."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import threading

    host, _, port = listen.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body, content_type = render(platform)
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics on http://%s:%s/metrics", host or "127.0.0.1", port)
    return server
