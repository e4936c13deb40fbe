"""Device commands, their lifecycle, poll bookkeeping and the enforcement policy.

Every write here goes through the same command bus (and group committer) as money and
readings, so a meter is only ever changed by one writer in this process. What arrears
mean for a meter is decided by the shared cut-off rules (``ledger/arrears.py``), the same
ones the cut-off feature keeps its books with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from domain.account import Account
from domain.device_command import DeviceCommand, command_id_for
from domain.errors import (
    AccountNotFound,
    GatewayNotFound,
    InvalidRequest,
    MeterNotFound,
    NotFound,
    TariffNotFound,
)
from domain.meter import Meter
from domain.site import Gateway
from domain.tariff import BANDS, Tariff, TariffSpec
from ledger.arrears import decide_arrears, drop_plan, relay_by_policy
from ledger.clock import Clock
from ledger.commands import Command, Handler, KeepPower
from ledger.core.bus import CommandBus
from ledger.core.store import DEVICE_COMMAND, EventStore
from ledger.core.types import Loader
from ledger.outcome import Outcome
from ledger.relays import ENFORCEMENT, RELAY_ACTIONS, order_relay


DEFAULT_OFFLINE_AFTER = 3


class CommandNotFound(NotFound):
    code = "command-not-found"


class DeviceService:
    """Device commands, polls and enforcement, over the event store and the command bus."""

    def __init__(self, store: EventStore, bus: CommandBus, *, clock: Clock,
                 offline_after: int = DEFAULT_OFFLINE_AFTER) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.offline_after = offline_after

    def handlers(self) -> Mapping[type[Command], Handler]:
        """The commands this service carries out (``Ledger.execute`` routes them here)."""
        return {KeepPower: self.carry_out_keep_power}

    def carry_out_keep_power(self, command: KeepPower, actor: dict) -> Outcome:
        result = self.command_meter(command.meter_id, action="keep_power",
                                    reason=command.reason, until=command.until, actor=actor,
                                    idempotency_key=command.idempotency_key)
        return Outcome(result, True, None)

    # -- staff commands ----------------------------------------------------------------

    def command_meter(self, meter_id: UUID, *, action: str, actor: dict,
                      reason: str | None = None, until: datetime | None = None,
                      thresholds: dict[str, int] | None = None,
                      idempotency_key: str | None = None) -> dict[str, Any]:
        cause = f"request:{idempotency_key or uuid4()}"
        command_id = command_id_for(meter_id, action, cause)
        now = self.clock()
        if until is not None and until <= now:
            raise InvalidRequest("until must lie in the future")

        def decide(load: Loader):
            meter = load(meter_id, Meter, MeterNotFound)
            if self.store.find(command_id) is not None:
                return [], {"command_id": str(command_id), "existing": True}
            payload: dict[str, Any] = {}
            if action in RELAY_ACTIONS:
                meter.order_relay(RELAY_ACTIONS[action], command_id, "manual", actor)
                payload = {"relay": RELAY_ACTIONS[action]}
            elif action == "keep_power":
                meter.set_keep_power(until, reason or "", actor)
                payload = {"keep_power": True}
            elif action in ("release_keep_power", "restore_prepaid"):
                if action == "release_keep_power" and not meter.keep_power:
                    raise InvalidRequest(f"meter {meter.meter_no} has no keep-power")
                if meter.keep_power:
                    meter.release_keep_power(reason or action, actor)
                payload = {"keep_power": False}
                relay = self._relay_by_balance(meter, load)
                # Without keep-power the balance decides the relay again; restoring
                # prepaid mode also undoes a manual trip or close.
                if action == "restore_prepaid" or (relay == "open" and
                                                   meter.desired_relay == "closed"):
                    meter.order_relay(relay, command_id, "arrears" if relay == "open"
                                      else "restored", actor)
                    payload["relay"] = relay
            elif action == "sync_tariff":
                payload = {"prices_1e4": self._meter_prices(meter, load, now)}
            elif action == "sync_thresholds":
                if thresholds:
                    meter.set_thresholds(actor=actor, **thresholds)
                if meter.thresholds is None:
                    raise InvalidRequest("this meter has no thresholds: give alarm1, alarm2 "
                                         "and overload_kw")
                payload = dict(meter.thresholds)
            command = DeviceCommand.issue(
                meter_id=meter.id, meter_no=meter.meter_no, gateway_id=meter.gateway_id,
                action=action, reason=reason, cause=cause, payload=payload, issued_at=now,
                actor=actor)
            return [meter, command], {"command_id": str(command.id), "existing": False}

        return self.bus.write(meter_id, command_id, DEVICE_COMMAND, decide).result

    def get_command(self, command_id: UUID) -> DeviceCommand:
        found = self.store.find(command_id)
        if not isinstance(found, DeviceCommand):
            raise CommandNotFound(f"command {command_id} does not exist")
        return found

    def command_history(self, command_id: UUID) -> list:
        self.get_command(command_id)
        return list(self.store.events.get(command_id))

    # -- the executor reports ----------------------------------------------------------

    def record_command(self, command_id: UUID, outcome: str, *,
                       counter: int | None = None, error: str | None = None,
                       observed: dict | None = None) -> DeviceCommand:
        """``outcome``: sent, acknowledged, failed or unreachable."""
        now = self.clock()

        def decide(load: Loader):
            command = load(command_id, DeviceCommand, CommandNotFound)
            if command.done:
                return [], {}
            aggregates: list[Any] = [command]
            seen = (observed or {}).get("relay")
            if outcome in ("acknowledged", "failed") and seen in ("open", "closed"):
                # What the meter said when read back (its identity checked) is the newest
                # thing known about its relay, whether the command succeeded or not.
                meter = load(command.meter_id, Meter, MeterNotFound)
                meter.relay_read_back(command_id=command.id, relay=seen,
                                      keep_power=bool((observed or {}).get("keep_power")),
                                      at=now)
                aggregates.append(meter)
            if outcome == "sent":
                command.sent(counter, now)
            elif outcome == "acknowledged":
                command.acknowledge(at=now, observed=observed or {})
                meter = load(command.meter_id, Meter, MeterNotFound)
                if "relay" in command.payload:
                    meter.confirm_relay(command_id=command.id,
                                        relay=(observed or {}).get("relay", ""),
                                        keep_power=bool((observed or {}).get("keep_power")))
                    if all(a is not meter for a in aggregates):
                        aggregates.append(meter)
            elif outcome == "failed":
                command.fail(error or "failed", now)
            elif outcome == "unreachable":
                command.unreachable(error or "unreachable", now)
            else:
                raise AssertionError(outcome)
            if command.status == "given_up":
                meter = load(command.meter_id, Meter, MeterNotFound)
                if meter.relay_pending == command.id:
                    meter.confirm_relay(command_id=command.id, relay="unknown",
                                        keep_power=meter.keep_power)
                    if all(a is not meter for a in aggregates):
                        aggregates.append(meter)
            return aggregates, {}

        self.bus.write(command_id, uuid4(), "command-report", decide)
        return self.get_command(command_id)

    # -- polls -------------------------------------------------------------------------

    def record_poll_failures(self, failures: Iterable[tuple[UUID, str]]) -> int:
        """Count failed polls; returns how many meters went offline now."""
        now = self.clock()
        went_offline = []

        def decide_for(meter_id: UUID, error: str):
            def decide(load: Loader):
                meter = load(meter_id, Meter, MeterNotFound)
                if meter.poll_failed(error, now, self.offline_after):
                    went_offline.append(meter_id)
                return [meter], {}
            return decide

        commands = [(meter_id, uuid4(), "poll-failed", decide_for(meter_id, error))
                    for meter_id, error in failures]
        self.bus.write_many([(t, d, f) for _, t, d, f in commands])
        return len(went_offline)

    def record_gateway_unreachable(self, gateway_id: UUID, meter_ids: list[UUID],
                                   error: str) -> int:
        """A gateway that cannot be reached: its meters are offline now, with one alert
        for the gateway rather than one per meter. Returns how many went offline."""
        now = self.clock()
        went: list[UUID] = []

        def decide(load: Loader):
            gateway = load(gateway_id, Gateway, GatewayNotFound)
            changed: list[Any] = [gateway] if gateway.went_unreachable(
                error, now, len(meter_ids)) else []
            for meter_id in meter_ids:
                meter = load(meter_id, Meter, MeterNotFound)
                if meter.offline_with_gateway(gateway_id, error, now):
                    went.append(meter_id)
                    changed.append(meter)
            return changed, {}

        self.bus.write_many([(uuid4(), "gateway-unreachable", decide)])
        return len(went)

    def record_poll_successes(self, meter_ids: Iterable[UUID]) -> None:
        """Meters that answered a status poll: back online (no reading, no billing)."""
        now = self.clock()

        def decide_for(meter_id: UUID):
            def decide(load: Loader):
                meter = load(meter_id, Meter, MeterNotFound)
                was = (meter.online, meter.failed_polls)
                meter.poll_succeeded(now)
                return ([meter] if (meter.online, meter.failed_polls) != was else []), {}
            return decide

        self.bus.write_many([(uuid4(), "status-ok", decide_for(m)) for m in meter_ids])

    def record_gateway_reachable(self, gateway_id: UUID) -> None:
        """The gateway answered again (its meters come back with their own answers)."""
        now = self.clock()

        def decide(load: Loader):
            gateway = load(gateway_id, Gateway, GatewayNotFound)
            return ([gateway] if gateway.came_back(now) else []), {}

        self.bus.write_many([(uuid4(), "gateway-reachable", decide)])

    def poll_bookkeeping(self, meter: Meter, reported_relay: str | None,
                         power_w: int | None, at: datetime, load: Loader) -> list[Any]:
        """After a good poll: back online, reconcile the relay, trip on overload.

        Returns the new aggregates (commands) to save with the meter."""
        meter.poll_succeeded(at)
        if meter.status != "active" or meter.mode != "prepaid":
            return []
        overload_w = (meter.thresholds or {}).get("overload_w")
        if overload_w and power_w is not None and power_w > overload_w and \
                meter.desired_relay == "closed" and not meter.keep_power:
            meter.overload_detected(power_w=power_w, limit_w=overload_w, at=at)
            return [order_relay(meter, "trip", "overload", f"overload:{at.isoformat()}",
                                at, reason=f"{power_w} W above the {overload_w} W limit")]
        if reported_relay and meter.relay_pending is None and \
                reported_relay != meter.desired_relay:
            meter.relay_mismatch(wanted=meter.desired_relay, reported=reported_relay, at=at)
            action = "trip" if meter.desired_relay == "open" else "close"
            return [order_relay(meter, action, meter.relay_reason or "reconcile",
                                f"reconcile:{at.isoformat()}", at,
                                reason="the meter reported another relay state")]
        return []

    # -- enforcement -------------------------------------------------------------------

    def enforce_balances(self, decisions: list[tuple[UUID, str, int, str]]) -> int:
        """Trip or restore the prepaid meters of wallets whose balance crossed zero.

        ``decisions``: (meter_id, wallet, balance_fen, cause) where cause names the money
        event that produced the balance. Returns the number of commands issued.
        """
        now = self.clock()
        issued = []

        def decide_for(meter_id: UUID, wallet: str, balance_fen: int, cause: str):
            def decide(load: Loader):
                try:
                    meter = load(meter_id, Meter, MeterNotFound)
                except MeterNotFound:
                    return [], {}
                if meter.status != "active" or meter.mode != "prepaid" or \
                        meter.kind != wallet or meter.account_id is None:
                    return drop_plan(meter, load), {}
                # Judged on the account as it is now, not on the balance that triggered it,
                # under the meter's cut-off policy (ledger/arrears.py): a meter is cut off
                # for its own wallet in arrears, or (electricity) for property fees in
                # arrears.
                account = load(meter.account_id, Account, AccountNotFound)
                aggregates = decide_arrears(meter, account, cause, now, load,
                                            self.store.find)
                issued.extend(a.id for a in aggregates if isinstance(a, DeviceCommand))
                return aggregates, {}
            return decide

        jobs = [(meter_id, uuid4(), "enforce", decide_for(*d)) for d in decisions
                for meter_id in [d[0]]]
        self.bus.write_many([(t, dg, f) for _, t, dg, f in jobs])
        return len(issued)

    def lapse_keep_power(self, meter_ids: Iterable[UUID]) -> int:
        """Keep-power with an end time that has passed: release it, then let the balance
        decide the relay again."""
        now = self.clock()
        count = []

        def decide_for(meter_id: UUID):
            def decide(load: Loader):
                meter = load(meter_id, Meter, MeterNotFound)
                if not meter.keep_power_lapsed(now):
                    return [], {}
                meter.release_keep_power("keep-power ended", ENFORCEMENT)
                relay = self._relay_by_balance(meter, load)
                command = DeviceCommand.issue(
                    meter_id=meter.id, meter_no=meter.meter_no, gateway_id=meter.gateway_id,
                    action="restore_prepaid", reason="keep-power ended",
                    cause=f"lapse:{meter.keep_power_until or now}",
                    payload={"keep_power": False, "relay": relay}, issued_at=now,
                    actor=ENFORCEMENT)
                meter.order_relay(relay, command.id, "arrears" if relay == "open" else
                                  "restored", ENFORCEMENT)
                count.append(meter_id)
                return [meter, command], {}
            return decide

        self.bus.write_many([(uuid4(), "lapse", decide_for(m)) for m in meter_ids])
        return len(count)

    # -- helpers -----------------------------------------------------------------------

    def _relay_by_balance(self, meter: Meter, load: Loader) -> str:
        if meter.mode != "prepaid" or meter.account_id is None:
            return "closed"
        account = load(meter.account_id, Account, AccountNotFound)
        return relay_by_policy(meter, account, load, self.clock)

    def _meter_prices(self, meter: Meter, load: Loader,
                      now: datetime) -> list[int]:
        tariff_id = meter.tariff_at(now)
        if tariff_id is None:
            raise InvalidRequest("this meter has no tariff to send")
        found = load(tariff_id, Tariff, TariffNotFound).spec_at(now)
        if found is None:
            raise InvalidRequest("the meter's tariff has no version in effect yet")
        spec: TariffSpec = found[1]
        if spec.kind == "tou":
            return [spec.band_prices_1e4[b] for b in BANDS]
        price = spec.price_1e4 if spec.kind == "flat" else spec.tiers[0].price_1e4
        return [price] * 4
