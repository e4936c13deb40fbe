"""The composition root: builds settings, engines, the event store and the ledger with
every port it needs, the read models' projectors and the processes. The API, the CLI, the
Celery worker and the tests all start from here (``Platform``)."""

from __future__ import annotations

import logging
import threading
from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from adapters import db_faults
from adapters.auth import Authenticator, check_secret_files
from adapters.bus_clients import ControlSecrets
from adapters.device_runtime import DeviceRuntime
from adapters.event_store_bulk import load_many
from adapters.notifiers import notifiers_from
from adapters.payments.config import PaymentSettings
from adapters.payments.providers import providers_from
from adapters.scheduler import InProcessScheduler
from adapters.secure_frame import load_master_key
from domain.money import yuan_text_to_fen
from ledger.app import Ledger
from ledger.commands import ApprovalPolicy, RunCutoff
from ledger.clock import Clock, utc_now
from ledger.config import Settings
from ledger.gateway_hosts import GatewayHostPolicy, parse_networks
from ledger.relays import ENFORCEMENT
from processes.alerting import AlertPolicy
from processes.enforcement import EnforcementPolicy
from processes.follower import PolicyProcessor
from processes.notifications import NotificationSender
from projections.access.queries import AccessQueries
from projections.access.view import AccessView
from projections.accounts.queries import LedgerQueries
from projections.accounts.view import LedgerView
from projections.alerts.queries import AlertQueries
from projections.alerts.view import AlertView
from projections.db import Engines, prepare_database, make_engines
from projections.devices.queries import DeviceQueries
from projections.devices.view import DeviceView
from projections.metering.queries import MeteringQueries, pool_costs
from projections.metering.view import MeteringView
from projections.payments.queries import PaymentQueries
from projections.payments.view import PaymentView
from projections.projector import PollingRunner, Projector
from projections.property.queries import fee_schedule_accounts
from projections.property.view import PropertyView
from projections.readings import SqlReadingStore
from projections.report_queries import ReportQueries

log = logging.getLogger(__name__)


def read_model_views() -> list:
    """Every feature's view, in the order they apply a batch: one position, one transaction.
    The devices view runs after the metering view, whose table of meter alerts it adds to."""
    return [LedgerView(), MeteringView(), DeviceView(), PaymentView(), PropertyView(),
            AlertView(), AccessView()]


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("migrations")))
    return config


def migrate(settings: Settings) -> None:
    """Create the event store's tables and bring the read models to the newest schema."""
    prepare_database(settings)
    Ledger(settings.eventsourcing_env() | {"CREATE_TABLE": "y"}).close()
    engines = make_engines(settings)
    try:
        with engines.writer.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    finally:
        engines.dispose()


def schema_is_current(engines: Engines) -> bool:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with engines.reader.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() == head


class SchemaNotMigrated(RuntimeError):
    pass


class Platform:
    def __init__(self, settings: Settings | None = None, *, clock: Clock = utc_now) -> None:
        self.settings = settings or Settings()
        check_secret_files(self.settings, PaymentSettings())
        if self.settings.should_auto_migrate:
            migrate(self.settings)
        self.engines = make_engines(self.settings)
        if not schema_is_current(self.engines):
            self.engines.dispose()
            raise SchemaNotMigrated("the database schema is not current: run `prepaid migrate`")
        self.notifiers = notifiers_from(self.settings)
        reader = self.engines.reader
        self.ledger = Ledger(
            self.settings.eventsourcing_env(), clock=clock,
            max_top_up_fen=self.settings.max_top_up_fen,
            max_write_attempts=self.settings.max_write_attempts,
            group_commit_max_commands=self.settings.group_commit_max_commands,
            group_commit_linger_s=self.settings.group_commit_linger_s,
            group_commit_steady_linger_s=self.settings.group_commit_steady_linger_s,
            group_commit_shards=self.settings.group_commit_shards,
            hot_aggregates=self.settings.hot_aggregates,
            max_plausible_wh_per_hour=self.settings.max_plausible_kw * 1000,
            bulk_loader=load_many,
            reading_store=SqlReadingStore(self.engines.writer),
            payment_providers=providers_from(PaymentSettings()),
            pool_costs=lambda meters, first, last: pool_costs(reader, meters, first, last),
            fee_schedule_accounts=lambda: fee_schedule_accounts(reader),
            offline_after=self.settings.offline_after_polls,
            gateway_hosts=GatewayHostPolicy(
                parse_networks(self.settings.gateway_allowed_networks)),
            alert_thresholds_fen={"alarm1": yuan_text_to_fen(self.settings.alarm1),
                                  "alarm2": yuan_text_to_fen(self.settings.alarm2)},
            alert_hysteresis_fen=yuan_text_to_fen(self.settings.alert_hysteresis),
            notify_channels=tuple(self.notifiers))
        db_faults.tune_pools(self.ledger, self.settings)
        self.projector = Projector(self.ledger, self.engines, read_model_views(),
                                   batch_size=self.settings.projection_batch_size)
        self.projector.restore_indexes()  # if a rebuild was stopped before its end
        self.projectors = [self.projector]
        self.queries = LedgerQueries(self.engines.reader)
        self.metering_queries = MeteringQueries(self.engines.reader)
        self.device_queries = DeviceQueries(self.engines.reader)
        self.payment_queries = PaymentQueries(self.engines.reader)
        self.alert_queries = AlertQueries(self.engines.reader)
        self.access_queries = AccessQueries(self.engines.reader)
        self.reports = ReportQueries(self.engines.reader)
        self.approvals = ApprovalPolicy(self.settings.approval_actions,
                                        self.settings.approval_refund_above_fen)
        # Credentials expire by the wall clock, whatever business clock the ledger runs on.
        self.auth = Authenticator(self.settings, self.engines.writer, utc_now)
        self.enforcement = PolicyProcessor(self.ledger, self.engines,
                                           EnforcementPolicy(self.ledger),
                                           self.settings.projection_batch_size)
        self.alerting = PolicyProcessor(self.ledger, self.engines, AlertPolicy(self.ledger),
                                        self.settings.projection_batch_size)
        self.notification_sender = NotificationSender(
            self.ledger, self.alert_queries.due_notifications, self.notifiers)
        self._runner: PollingRunner | None = None
        # The runtime that owns device work in this process (the in-process scheduler's,
        # or the Celery worker's), where inbound DTUs are connected.
        self.live_runtime: DeviceRuntime | None = None
        self._scheduler: InProcessScheduler | None = None
        self.database_watch = db_faults.DatabaseWatch(
            db_faults.probe_for(self.settings, self.engines),
            self.settings.database_probe_interval_s,
            lambda: db_faults.refresh_pools(self.ledger, self.engines))
        from adapters.metrics import instrument

        instrument(self)

    def start_background(self) -> None:
        """Poll the event log so events written by other processes reach the read models
        (unless ``PREPAID_PROJECTIONS_IN_PROCESS`` is false: `prepaid projections run` does
        it then); with no broker configured, also run polling and device work here."""
        self.catch_up()
        if self.settings.projections_in_process:
            self._runner = PollingRunner(self.projectors,
                                         self.settings.projection_poll_interval_s)
            self._runner.start()
        if self.settings.run_devices_in_process:
            self._scheduler = InProcessScheduler(self)
            self._scheduler.start()

    def project_forever(self, stop: threading.Event) -> None:
        """`prepaid projections run`: keep the read models current until ``stop`` is set."""
        self.catch_up()
        runner = PollingRunner(self.projectors, self.settings.projection_poll_interval_s)
        runner.start()
        try:
            stop.wait()
        finally:
            runner.stop()

    def catch_up(self, position: int | None = None) -> None:
        """Bring every read model up to ``position`` (or the end of the log).

        Called after each successful write so that the same client's next GET sees it.
        With a ``position`` (a write that the event store has committed) a database
        failure here is logged and left to the polling runner: the write stands and its
        answer is the command's result, never an error that suggests nothing was stored.
        """
        if position is None:
            for projector in self.projectors:
                projector.catch_up()
            return
        try:
            for projector in self.projectors:
                projector.catch_up(until=position)
        except Exception as error:
            log.warning("read models not brought up to %s after a stored write (they catch "
                        "up later): %s", position, error)
            self.database_watch.failed()

    def enforce(self) -> None:
        """Run the enforcement policy over the events it has not seen yet, carry out the
        cut-off plans and timetable switches that fell due, and bring the read models (the
        list of due commands) up to what they issued."""
        self.catch_up()
        acted = self.enforcement.catch_up() + self.alerting.catch_up()
        # Trips planned for later (grace, friendly hours) and timetable switches, when due.
        site_ids = [site["id"] for site in self.metering_queries.list_sites()]
        if self.ledger.execute(RunCutoff(tuple(site_ids)), ENFORCEMENT):
            acted += 1
            self.catch_up()
            acted += self.enforcement.catch_up() + self.alerting.catch_up()
        if acted:
            self.catch_up()

    def send_notifications(self) -> int:
        """Send what the outbox holds (due), once each: a send repeated after a crash
        carries the same idempotency key."""
        sent = self.notification_sender.send_due()
        if sent:
            self.catch_up()
        return sent

    def master_key(self) -> bytes | None:
        path = self.settings.master_key_file
        return load_master_key(path) if path else None

    def control_secrets(self) -> ControlSecrets | None:
        path = self.settings.dlt645_credentials_file
        return ControlSecrets.load(path) if path else None

    def device_runtime(self, clock=None) -> DeviceRuntime:
        from adapters.metrics import poll_recorder

        runtime = DeviceRuntime(self.ledger, self.device_queries, self.master_key(),
                                timeout_s=self.settings.poll_timeout_s,
                                tries=self.settings.poll_tries,
                                clock=clock or self.ledger.clock,
                                secrets=self.control_secrets())
        runtime.on_polled = poll_recorder(self.engines.writer)
        return runtime

    def link_state(self, gateway) -> dict | None:
        """Whether the gateway's link is up, as this process knows it (None: device work
        runs in another process)."""
        runtime = self.live_runtime
        return runtime.link_state(gateway) if runtime is not None else None

    def collection_report(self, from_day, to_day, site_ids) -> list:
        """The collection report (adapters/collection.py) over the read models."""
        from adapters.collection import collection_report

        return collection_report(self.engines.reader, from_day, to_day, site_ids)

    def rebuild_projections(self) -> dict[str, int]:
        return {projector.name: projector.rebuild() for projector in self.projectors}

    def close(self) -> None:
        if self._scheduler:
            self._scheduler.stop()
        if self._runner:
            self._runner.stop()
        self.ledger.close()
        self.engines.dispose()
