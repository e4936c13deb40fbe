"""Device commands: what staff, the cut-off process and approvals ask of a meter, what the
device runtime reports back (command outcomes, polls, gateways), and what enforcement
decides on a meter (arrears, keep-power that ended).

Each decision is pure: it sees stored state only through ``load`` and the world outside
only through its context (the time, the actor, ids fixed for it, limits). The commands
that report on many meters at once (polls, enforcement, lapsed keep-power) decide one
meter at a time (``decide_one``): each meter is its own job on the bus, so one refused
meter does not refuse the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from domain.account import Account
from domain.device_command import DeviceCommand
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
from ledger.arrears import decide_arrears, drop_plan, issued, relay_by_policy
from ledger.commands.base import Command, iso, when
from ledger.core.types import Loader
from ledger.relays import ENFORCEMENT, RELAY_ACTIONS

class CommandNotFound(NotFound):
    code = "command-not-found"


@dataclass(frozen=True)
class IssueContext:
    """What issuing a device command needs from outside: the time, who asks, and the
    cause and command id fixed for the request (from its idempotency key)."""

    now: datetime
    actor: dict
    cause: str
    command_id: UUID


@dataclass(frozen=True)
class DeviceContext:
    """What a report, a poll or an enforcement decision needs from outside: the time, and
    the failed polls after which a meter counts as offline."""

    now: datetime
    offline_after: int


# -- staff commands --------------------------------------------------------------------


@dataclass(frozen=True)
class IssueDeviceCommand(Command):
    """Trip, close, keep power (保电), release it, restore prepaid, sync the tariff or the
    thresholds, or read now: one ``DeviceCommand`` for the device runtime to carry out."""

    action: ClassVar[str] = "command_meter"
    meter_id: UUID
    device_action: str
    reason: str | None = None
    until: datetime | None = None
    thresholds: Mapping[str, int] | None = None
    idempotency_key: str | None = None

    def target(self) -> str:
        return str(self.meter_id)

    def check(self, now: datetime) -> None:
        if self.until is not None and self.until <= now:
            raise InvalidRequest("until must lie in the future")

    def decide(self, load: Loader, ctx: IssueContext) -> tuple[list[Any], dict[str, Any]]:
        action, reason, actor, now = self.device_action, self.reason, ctx.actor, ctx.now
        meter = load(self.meter_id, Meter, MeterNotFound)
        if issued(load, ctx.command_id):
            return [], {"command_id": str(ctx.command_id), "existing": True}
        payload: dict[str, Any] = {}
        if action in RELAY_ACTIONS:
            meter.order_relay(RELAY_ACTIONS[action], ctx.command_id, "manual", actor)
            payload = {"relay": RELAY_ACTIONS[action]}
        elif action == "keep_power":
            meter.set_keep_power(self.until, reason or "", actor)
            payload = {"keep_power": True}
        elif action in ("release_keep_power", "restore_prepaid"):
            if action == "release_keep_power" and not meter.keep_power:
                raise InvalidRequest(f"meter {meter.meter_no} has no keep-power")
            if meter.keep_power:
                meter.release_keep_power(reason or action, actor)
            payload = {"keep_power": False}
            relay = relay_by_balance(meter, load, now)
            # Without keep-power the balance decides the relay again; restoring
            # prepaid mode also undoes a manual trip or close.
            if action == "restore_prepaid" or (relay == "open" and
                                               meter.desired_relay == "closed"):
                meter.order_relay(relay, ctx.command_id, "arrears" if relay == "open"
                                  else "restored", actor)
                payload["relay"] = relay
        elif action == "sync_tariff":
            payload = {"prices_1e4": meter_prices(meter, load, now)}
        elif action == "sync_thresholds":
            if self.thresholds:
                meter.set_thresholds(actor=actor, **self.thresholds)
            if meter.thresholds is None:
                raise InvalidRequest("this meter has no thresholds: give alarm1, alarm2 "
                                     "and overload_kw")
            payload = dict(meter.thresholds)
        command = DeviceCommand.issue(
            meter_id=meter.id, meter_no=meter.meter_no, gateway_id=meter.gateway_id,
            action=action, reason=reason, cause=ctx.cause, payload=payload, issued_at=now,
            actor=actor)
        return [meter, command], {"command_id": str(command.id), "existing": False}


@dataclass(frozen=True)
class KeepPower(Command):
    """Keep a meter's power on (保电) whatever its balance, until a time or released."""

    action: ClassVar[str] = "keep_power"
    meter_id: UUID
    reason: str | None = None
    until: datetime | None = None
    idempotency_key: str | None = None

    def target(self) -> str:
        return str(self.meter_id)

    def params(self) -> dict[str, Any]:
        return {"reason": self.reason, "until": iso(self.until)}

    @classmethod
    def from_params(cls, target: str, p: dict[str, Any], key: str | None) -> KeepPower:
        return cls(UUID(target), reason=p.get("reason"), until=when(p.get("until")),
                   idempotency_key=key)

    def as_device_command(self) -> IssueDeviceCommand:
        """Carried out as the device command it asks for."""
        return IssueDeviceCommand(self.meter_id, "keep_power", reason=self.reason,
                                  until=self.until, idempotency_key=self.idempotency_key)


# -- the device runtime reports --------------------------------------------------------


@dataclass(frozen=True)
class RecordCommandOutcome(Command):
    """What became of one try of a device command: sent, acknowledged, failed or
    unreachable, with what the meter said when read back."""

    action: ClassVar[str] = "record_command"
    command_id: UUID
    outcome: str
    counter: int | None = None
    error: str | None = None
    observed: Mapping[str, Any] | None = None
    idempotency_key: str | None = None

    def target(self) -> str:
        return str(self.command_id)

    def decide(self, load: Loader, ctx: DeviceContext) -> tuple[list[Any], dict[str, Any]]:
        now, outcome, observed = ctx.now, self.outcome, self.observed or {}
        command = load(self.command_id, DeviceCommand, CommandNotFound)
        if command.done:
            return [], {}
        aggregates: list[Any] = [command]
        # Loaded once: the one-by-one writer's loader reads a new copy on every call, and
        # two copies of the meter would be saved as two conflicting writes.
        meter: Meter | None = None
        seen = observed.get("relay")
        if outcome in ("acknowledged", "failed") and seen in ("open", "closed"):
            # What the meter said when read back (its identity checked) is the newest
            # thing known about its relay, whether the command succeeded or not.
            meter = load(command.meter_id, Meter, MeterNotFound)
            meter.relay_read_back(command_id=command.id, relay=seen,
                                  keep_power=bool(observed.get("keep_power")), at=now)
            aggregates.append(meter)
        if outcome == "sent":
            command.sent(self.counter, now)
        elif outcome == "acknowledged":
            command.acknowledge(at=now, observed=dict(observed))
            if meter is None:
                meter = load(command.meter_id, Meter, MeterNotFound)
            if "relay" in command.payload:
                meter.confirm_relay(command_id=command.id, relay=observed.get("relay", ""),
                                    keep_power=bool(observed.get("keep_power")))
                if all(a is not meter for a in aggregates):
                    aggregates.append(meter)
        elif outcome == "failed":
            command.fail(self.error or "failed", now)
        elif outcome == "unreachable":
            command.unreachable(self.error or "unreachable", now)
        else:
            raise AssertionError(outcome)
        if command.status == "given_up":
            if meter is None:
                meter = load(command.meter_id, Meter, MeterNotFound)
            if meter.relay_pending == command.id:
                meter.confirm_relay(command_id=command.id, relay="unknown",
                                    keep_power=meter.keep_power)
                if all(a is not meter for a in aggregates):
                    aggregates.append(meter)
        return aggregates, {}


@dataclass(frozen=True)
class RecordPollFailures(Command):
    """Meters that did not answer a poll, each with its error."""

    action: ClassVar[str] = "record_poll_failures"
    failures: tuple[tuple[UUID, str], ...]
    idempotency_key: str | None = None

    def decide_one(self, load: Loader, ctx: DeviceContext, meter_id: UUID,
                   error: str) -> tuple[list[Any], dict[str, Any]]:
        meter = load(meter_id, Meter, MeterNotFound)
        return [meter], {"went_offline": meter.poll_failed(error, ctx.now, ctx.offline_after)}


@dataclass(frozen=True)
class RecordGatewayUnreachable(Command):
    """A gateway that cannot be reached: its meters go offline with it, with one alert
    for the gateway rather than one per meter."""

    action: ClassVar[str] = "record_gateway_unreachable"
    gateway_id: UUID
    meter_ids: tuple[UUID, ...]
    error: str
    idempotency_key: str | None = None

    def target(self) -> str:
        return str(self.gateway_id)

    def decide(self, load: Loader, ctx: DeviceContext) -> tuple[list[Any], dict[str, Any]]:
        gateway = load(self.gateway_id, Gateway, GatewayNotFound)
        changed: list[Any] = [gateway] if gateway.went_unreachable(
            self.error, ctx.now, len(self.meter_ids)) else []
        went = 0
        for meter_id in self.meter_ids:
            meter = load(meter_id, Meter, MeterNotFound)
            if meter.offline_with_gateway(self.gateway_id, self.error, ctx.now):
                went += 1
                changed.append(meter)
        return changed, {"went_offline": went}


@dataclass(frozen=True)
class RecordPollSuccesses(Command):
    """Meters that answered a status poll: back online (no reading, no billing)."""

    action: ClassVar[str] = "record_poll_successes"
    meter_ids: tuple[UUID, ...]
    idempotency_key: str | None = None

    def decide_one(self, load: Loader, ctx: DeviceContext,
                   meter_id: UUID) -> tuple[list[Any], dict[str, Any]]:
        meter = load(meter_id, Meter, MeterNotFound)
        was = (meter.online, meter.failed_polls)
        meter.poll_succeeded(ctx.now)
        return ([meter] if (meter.online, meter.failed_polls) != was else []), {}


@dataclass(frozen=True)
class RecordGatewayReachable(Command):
    """The gateway answered again (its meters come back with their own answers)."""

    action: ClassVar[str] = "record_gateway_reachable"
    gateway_id: UUID
    idempotency_key: str | None = None

    def target(self) -> str:
        return str(self.gateway_id)

    def decide(self, load: Loader, ctx: DeviceContext) -> tuple[list[Any], dict[str, Any]]:
        gateway = load(self.gateway_id, Gateway, GatewayNotFound)
        return ([gateway] if gateway.came_back(ctx.now) else []), {}


# -- enforcement -----------------------------------------------------------------------


@dataclass(frozen=True)
class EnforceBalances(Command):
    """Trip or restore the prepaid meters of wallets whose balance crossed zero.

    ``decisions``: (meter_id, wallet, balance_fen, cause) where cause names the money
    event that produced the balance."""

    action: ClassVar[str] = "enforce_balances"
    decisions: tuple[tuple[UUID, str, int, str], ...]
    idempotency_key: str | None = None

    def decide_one(self, load: Loader, ctx: DeviceContext, meter_id: UUID, wallet: str,
                   balance_fen: int, cause: str) -> tuple[list[Any], dict[str, Any]]:
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
        aggregates = decide_arrears(meter, account, cause, ctx.now, load)
        issued_now = sum(1 for a in aggregates if isinstance(a, DeviceCommand))
        return aggregates, {"issued": issued_now}


@dataclass(frozen=True)
class LapseKeepPower(Command):
    """Keep-power with an end time that has passed: release it, then let the balance
    decide the relay again."""

    action: ClassVar[str] = "lapse_keep_power"
    meter_ids: tuple[UUID, ...]
    idempotency_key: str | None = None

    def decide_one(self, load: Loader, ctx: DeviceContext,
                   meter_id: UUID) -> tuple[list[Any], dict[str, Any]]:
        now = ctx.now
        meter = load(meter_id, Meter, MeterNotFound)
        if not meter.keep_power_lapsed(now):
            return [], {}
        meter.release_keep_power("keep-power ended", ENFORCEMENT)
        relay = relay_by_balance(meter, load, now)
        command = DeviceCommand.issue(
            meter_id=meter.id, meter_no=meter.meter_no, gateway_id=meter.gateway_id,
            action="restore_prepaid", reason="keep-power ended",
            cause=f"lapse:{meter.keep_power_until or now}",
            payload={"keep_power": False, "relay": relay}, issued_at=now,
            actor=ENFORCEMENT)
        meter.order_relay(relay, command.id, "arrears" if relay == "open" else
                          "restored", ENFORCEMENT)
        return [meter, command], {"issued": 1}


# -- what the decisions share ----------------------------------------------------------


def relay_by_balance(meter: Meter, load: Loader, now: datetime) -> str:
    if meter.mode != "prepaid" or meter.account_id is None:
        return "closed"
    account = load(meter.account_id, Account, AccountNotFound)
    return relay_by_policy(meter, account, load, now)


def meter_prices(meter: Meter, load: Loader, now: datetime) -> list[int]:
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
