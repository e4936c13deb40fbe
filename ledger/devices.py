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

from domain.device_command import DeviceCommand, command_id_for
from domain.meter import Meter
from ledger.clock import Clock
from ledger.commands import (
    Command,
    CommandNotFound,
    DeviceContext,
    EnforceBalances,
    Handler,
    IssueContext,
    IssueDeviceCommand,
    KeepPower,
    LapseKeepPower,
    RecordCommandOutcome,
    RecordGatewayReachable,
    RecordGatewayUnreachable,
    RecordPollFailures,
    RecordPollSuccesses,
)
from ledger.core.bus import CommandBus
from ledger.core.store import DEVICE_COMMAND, EventStore
from ledger.core.types import Loader
from ledger.outcome import Outcome
from ledger.relays import ENFORCEMENT, order_relay

__all__ = ["CommandNotFound", "DEFAULT_OFFLINE_AFTER", "DEVICE_RUNTIME", "DeviceService"]

DEFAULT_OFFLINE_AFTER = 3
# Who reports what the meters said and did (no person: the device runtime).
DEVICE_RUNTIME = {"kind": "system", "id": "device-runtime"}


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
        return {IssueDeviceCommand: self.carry_out_device_command,
                KeepPower: self.carry_out_keep_power,
                RecordCommandOutcome: self.carry_out_command_outcome,
                RecordPollFailures: self.carry_out_poll_failures,
                RecordGatewayUnreachable: self.carry_out_gateway_unreachable,
                RecordPollSuccesses: self.carry_out_poll_successes,
                RecordGatewayReachable: self.carry_out_gateway_reachable,
                EnforceBalances: self.carry_out_enforcement,
                LapseKeepPower: self.carry_out_keep_power_lapse}

    def carry_out_keep_power(self, command: KeepPower, actor: dict) -> Outcome:
        result = self.carry_out_device_command(command.as_device_command(), actor)
        return Outcome(result, True, None)

    def _context(self) -> DeviceContext:
        return DeviceContext(self.clock(), self.offline_after)

    # -- staff commands ----------------------------------------------------------------

    def command_meter(self, meter_id: UUID, *, action: str, actor: dict,
                      reason: str | None = None, until: datetime | None = None,
                      thresholds: dict[str, int] | None = None,
                      idempotency_key: str | None = None) -> dict[str, Any]:
        return self.carry_out_device_command(
            IssueDeviceCommand(meter_id, action, reason, until, thresholds, idempotency_key),
            actor)

    def carry_out_device_command(self, command: IssueDeviceCommand,
                                 actor: dict) -> dict[str, Any]:
        cause = f"request:{command.idempotency_key or uuid4()}"
        command_id = command_id_for(command.meter_id, command.device_action, cause)
        now = self.clock()
        command.check(now)
        ctx = IssueContext(now, actor, cause, command_id)
        return self.bus.write(command.meter_id, command_id, DEVICE_COMMAND,
                              lambda load: command.decide(load, ctx)).result

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
        return self.carry_out_command_outcome(
            RecordCommandOutcome(command_id, outcome, counter, error, observed), DEVICE_RUNTIME)

    def carry_out_command_outcome(self, command: RecordCommandOutcome,
                                  actor: dict) -> DeviceCommand:
        ctx = self._context()
        self.bus.write(command.command_id, uuid4(), "command-report",
                       lambda load: command.decide(load, ctx))
        return self.get_command(command.command_id)

    # -- polls -------------------------------------------------------------------------

    def record_poll_failures(self, failures: Iterable[tuple[UUID, str]]) -> int:
        """Count failed polls; returns how many meters went offline now."""
        return self.carry_out_poll_failures(RecordPollFailures(tuple(failures)), DEVICE_RUNTIME)

    def carry_out_poll_failures(self, command: RecordPollFailures, actor: dict) -> int:
        ctx, decide = self._context(), command.decide_one
        outcomes = self.bus.write_many([
            (uuid4(), "poll-failed", lambda load, m=meter_id, e=error: decide(load, ctx, m, e))
            for meter_id, error in command.failures])
        return sum(1 for o in outcomes if isinstance(o, Outcome) and o.result["went_offline"])

    def record_gateway_unreachable(self, gateway_id: UUID, meter_ids: list[UUID],
                                   error: str) -> int:
        """A gateway that cannot be reached: its meters are offline now, with one alert
        for the gateway rather than one per meter. Returns how many went offline."""
        return self.carry_out_gateway_unreachable(
            RecordGatewayUnreachable(gateway_id, tuple(meter_ids), error), DEVICE_RUNTIME)

    def carry_out_gateway_unreachable(self, command: RecordGatewayUnreachable,
                                      actor: dict) -> int:
        ctx = self._context()
        [outcome] = self.bus.write_many([(uuid4(), "gateway-unreachable",
                                          lambda load: command.decide(load, ctx))])
        return outcome.result["went_offline"] if isinstance(outcome, Outcome) else 0

    def record_poll_successes(self, meter_ids: Iterable[UUID]) -> None:
        """Meters that answered a status poll: back online (no reading, no billing)."""
        self.carry_out_poll_successes(RecordPollSuccesses(tuple(meter_ids)), DEVICE_RUNTIME)

    def carry_out_poll_successes(self, command: RecordPollSuccesses, actor: dict) -> None:
        ctx, decide = self._context(), command.decide_one
        self.bus.write_many([(uuid4(), "status-ok", lambda load, m=m: decide(load, ctx, m))
                             for m in command.meter_ids])

    def record_gateway_reachable(self, gateway_id: UUID) -> None:
        """The gateway answered again (its meters come back with their own answers)."""
        self.carry_out_gateway_reachable(RecordGatewayReachable(gateway_id), DEVICE_RUNTIME)

    def carry_out_gateway_reachable(self, command: RecordGatewayReachable,
                                    actor: dict) -> None:
        ctx = self._context()
        self.bus.write_many([(uuid4(), "gateway-reachable",
                              lambda load: command.decide(load, ctx))])

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
        return self.carry_out_enforcement(EnforceBalances(tuple(decisions)), ENFORCEMENT)

    def carry_out_enforcement(self, command: EnforceBalances, actor: dict) -> int:
        ctx, decide = self._context(), command.decide_one
        outcomes = self.bus.write_many([
            (uuid4(), "enforce", lambda load, d=d: decide(load, ctx, *d))
            for d in command.decisions])
        return sum(o.result.get("issued", 0) for o in outcomes if isinstance(o, Outcome))

    def lapse_keep_power(self, meter_ids: Iterable[UUID]) -> int:
        """Keep-power with an end time that has passed: release it, then let the balance
        decide the relay again."""
        return self.carry_out_keep_power_lapse(LapseKeepPower(tuple(meter_ids)), ENFORCEMENT)

    def carry_out_keep_power_lapse(self, command: LapseKeepPower, actor: dict) -> int:
        ctx, decide = self._context(), command.decide_one
        outcomes = self.bus.write_many([(uuid4(), "lapse",
                                         lambda load, m=m: decide(load, ctx, m))
                                        for m in command.meter_ids])
        return sum(o.result.get("issued", 0) for o in outcomes if isinstance(o, Outcome))
