"""The ledger application: the core (event store, writer, command bus) and the feature
commands, built from what the composition root (``bootstrap.py``) hands it.

Every port and limit comes in through the constructor; nothing is set on a ledger after
it is built. Commands go through the command bus (``ledger/core/bus.py``): a group
committer stores the commands arriving together in one transaction, and the one-by-one
writer is the ordinary path it falls back to.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from uuid import UUID

from domain.account import Account
from domain.cutoff import SiteCutoff
from ledger.access import AccessService
from ledger.accounts import DEFAULT_MAX_TOP_UP_FEN, AccountService
from ledger.alerts import (
    DEFAULT_ALERT_HYSTERESIS_FEN,
    DEFAULT_ALERT_THRESHOLDS_FEN,  # noqa: F401  (importable from here)
    DEFAULT_NOTIFY_CHANNELS,
    AlertService,
)
from ledger.clock import Clock, utc_now
from ledger.commands import Command, handler_table
from ledger.core.bus import (
    DEFAULT_GROUP_COMMIT_LINGER_S,
    DEFAULT_GROUP_COMMIT_MAX_COMMANDS,
    DEFAULT_GROUP_COMMIT_SHARDS,
    DEFAULT_GROUP_COMMIT_STEADY_LINGER_S,
    DEFAULT_HOT_AGGREGATES,
    CommandBus,
)
from ledger.core.store import BulkLoader, EventStore
from ledger.core.types import Decide
from ledger.core.writer import DEFAULT_MAX_WRITE_ATTEMPTS, Writer
from ledger.cutoff import CutoffService
from ledger.devices import DEFAULT_OFFLINE_AFTER, DeviceService
from ledger.gateway_hosts import DEFAULT_POLICY, GatewayHostPolicy
from ledger.metering import DEFAULT_MAX_PLAUSIBLE_WH_PER_HOUR, MeteringService, ReadingStore
from ledger.outcome import Outcome
from ledger.payments import DEFAULT_ORDER_TTL, DEFAULT_QUERY_AFTER, PaymentService
from ledger.periods import PeriodService
from ledger.property import FeeScheduleAccounts, PoolCosts, PropertyService


class Ledger(EventStore):
    # A site's cut-off book gathers its timetables' switches day after day.
    snapshotting_intervals = {Account: 200, SiteCutoff: 200}

    def __init__(self, env: Mapping[str, str] | None = None, *, clock: Clock = utc_now,
                 max_top_up_fen: int = DEFAULT_MAX_TOP_UP_FEN,
                 max_write_attempts: int = DEFAULT_MAX_WRITE_ATTEMPTS,
                 group_commit_max_commands: int = DEFAULT_GROUP_COMMIT_MAX_COMMANDS,
                 group_commit_linger_s: float = DEFAULT_GROUP_COMMIT_LINGER_S,
                 group_commit_steady_linger_s: float = DEFAULT_GROUP_COMMIT_STEADY_LINGER_S,
                 group_commit_shards: int = DEFAULT_GROUP_COMMIT_SHARDS,
                 hot_aggregates: int = DEFAULT_HOT_AGGREGATES,
                 max_plausible_wh_per_hour: int = DEFAULT_MAX_PLAUSIBLE_WH_PER_HOUR,
                 rng: random.Random | None = None,
                 bulk_loader: BulkLoader | None = None,
                 reading_store: ReadingStore | None = None,
                 payment_providers: Mapping[str, Any] | None = None,
                 order_ttl: timedelta = DEFAULT_ORDER_TTL,
                 query_after: timedelta = DEFAULT_QUERY_AFTER,
                 pool_costs: PoolCosts | None = None,
                 fee_schedule_accounts: FeeScheduleAccounts | None = None,
                 offline_after: int = DEFAULT_OFFLINE_AFTER,
                 gateway_hosts: GatewayHostPolicy = DEFAULT_POLICY,
                 alert_thresholds_fen: Mapping[str, int] | None = None,
                 alert_hysteresis_fen: int = DEFAULT_ALERT_HYSTERESIS_FEN,
                 notify_channels: tuple[str, ...] = DEFAULT_NOTIFY_CHANNELS) -> None:
        super().__init__(env, bulk_loader=bulk_loader)
        self.clock = clock
        # Which hosts a gateway may name (PREPAID_GATEWAY_ALLOWED_NETWORKS); see
        # ledger/gateway_hosts.py. Registration and import check it, and so does every
        # connection the device runtime opens.
        self.gateway_hosts = gateway_hosts
        self.writer = Writer(self, max_attempts=max_write_attempts, rng=rng)
        self.bus = CommandBus(self, self.writer, max_commands=group_commit_max_commands,
                              linger_s=group_commit_linger_s,
                              steady_linger_s=group_commit_steady_linger_s,
                              shards=group_commit_shards, hot_aggregates=hot_aggregates)
        self.accounts = AccountService(self, self.bus, clock=clock,
                                       max_top_up_fen=max_top_up_fen)
        self.periods = PeriodService(self, clock=clock)
        # In dependency order: devices needs no other feature (the cut-off rules it
        # decides arrears with are shared, ledger/arrears.py); metering asks devices for
        # a poll's bookkeeping; cut-off reads accounts and metering and has devices carry
        # out its decisions; alerts read the cut-off books.
        self.devices = DeviceService(self, self.bus, clock=clock, offline_after=offline_after)
        self.metering = MeteringService(
            self, self.bus, clock=clock, devices=self.devices, reading_store=reading_store,
            gateway_hosts=gateway_hosts, max_plausible_wh_per_hour=max_plausible_wh_per_hour)
        self.cutoff = CutoffService(self, self.bus, clock=clock, accounts=self.accounts,
                                    sites=self.metering, enforcement=self.devices)
        self.alerts = AlertService(self, self.bus, clock=clock, cutoff=self.cutoff,
                                   thresholds_fen=alert_thresholds_fen,
                                   hysteresis_fen=alert_hysteresis_fen,
                                   notify_channels=notify_channels)
        self.payments = PaymentService(self, self.bus, clock=clock,
                                       providers=payment_providers, order_ttl=order_ttl,
                                       query_after=query_after, max_top_up_fen=max_top_up_fen)
        self.property = PropertyService(self, self.bus, clock=clock, pool_costs=pool_costs,
                                        fee_schedule_accounts=fee_schedule_accounts)
        self.access = AccessService(self, execute=self.execute)
        # Which service carries out each command, gathered once from the services.
        self.handlers = handler_table((self.accounts, self.periods, self.devices,
                                       self.metering, self.cutoff, self.alerts, self.payments,
                                       self.property, self.access))

    @property
    def payment_providers(self) -> Mapping[str, Any]:
        """The configured payment providers by channel (read-only): routes verify a
        notification's signature with them."""
        return self.payments.providers

    def execute(self, command: Command, actor: dict) -> Any:
        """Carry out one command, whoever asks: a route, a task, a granted approval. The
        service that owns the command's type carries it out (``handler_table``)."""
        try:
            handler = self.handlers[type(command)]
        except KeyError:
            raise TypeError(f"no handler for {type(command).__name__}") from None
        return handler(command, actor)

    @property
    def committers(self):
        return self.bus.committers

    def write_alone(self, transaction_id: UUID, digest: str, decide: Decide) -> Outcome:
        return self.writer.write(transaction_id, digest, decide)

    def close(self) -> None:
        self.bus.close()
        super().close()
