"""Sites, gateways, meters, tariffs and readings: the commands of the metering side.

A service over the ledger's event store and command bus, so that meters, tariffs and the
consumption charges they cause share one event log (and one notification sequence) with
the money. What a poll's reading also means for the relay (devices' bookkeeping) comes in
through the constructor.

The commands and their decisions are in ``ledger/commands/metering.py``; this service
builds each one's context (the actor, the time, the ids fixed for it, its limits) and saves
what the decision returns: through the command bus for readings and tariff assignments,
directly (``save_new``, ``save_changed``) for the rest, as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID, uuid4

from domain.errors import AlreadyExists, DomainError, GatewayNotFound, InvalidRequest, \
    MeterNotFound, SiteNotFound, TariffNotFound
from domain.meter import Meter, Reading, check_meter_no, meter_id_for
from domain.site import DEFAULT_POLL_INTERVAL_S, DEFAULT_TIMEZONE, Gateway, Site
from domain.tariff import Tariff, TariffSpec
from domain.transaction import account_id_for
from ledger.commands import (
    AddBuilding,
    AddTariffVersion,
    AddUnit,
    AssignmentContext,
    AssignTariff,
    BindMeter,
    ChangeContext,
    ChargeReading,
    Command,
    CreateContext,
    CreateSite,
    CreateTariff,
    GatewayContext,
    Handler,
    MeterContext,
    ReadingContext,
    ReadingInput,
    RegisterGateway,
    RegisterMeter,
    ReplaceMeter,
    TakeReadings,
    UnbindMeter,
)
from ledger.commands.metering import (
    DEFAULT_MAX_PLAUSIBLE_WH_PER_HOUR,
    MAX_READINGS_PER_BATCH,
    SYSTEM_ACTOR,
    PollBookkeeper,
    reading_problem,
)
from ledger.clock import Clock
from ledger.core.bus import CommandBus
from ledger.core.store import EventStore
from ledger.gateway_hosts import DEFAULT_POLICY, GatewayHostPolicy

__all__ = ["DEFAULT_MAX_PLAUSIBLE_WH_PER_HOUR", "MAX_READINGS_PER_BATCH", "SYSTEM_ACTOR",
           "Ingested", "MeteringService", "PollBookkeeper", "ReadingInput", "ReadingStore",
           "StoredReading"]
PRELOAD_FROM_READINGS = 100  # batches this large warm the committer in bulk first


@dataclass(frozen=True)
class Ingested:
    answers: list[dict[str, Any]]
    position: int | None  # the last event written, for read-your-writes


@dataclass(frozen=True)
class StoredReading:
    meter_id: UUID
    meter_no: str
    reading: ReadingInput
    billing: str
    recorded_at: datetime


class ReadingStore(Protocol):
    """Where readings (telemetry) are kept: a table built for volume, not the event log."""

    def store(self, rows: Sequence[StoredReading]) -> list[str]:
        """Insert rows that are new; say per row 'inserted', 'identical' or 'conflict'."""

    def mark_billed(self, meter_id: UUID, read_ats: Sequence[datetime]) -> None:
        """Held readings of a meter were charged (a tariff now covers them)."""


class MeteringService:
    """Commands about the physical site, over the event store and the command bus."""

    def __init__(self, store: EventStore, bus: CommandBus, *, clock: Clock,
                 devices: PollBookkeeper, reading_store: ReadingStore | None = None,
                 gateway_hosts: GatewayHostPolicy = DEFAULT_POLICY,
                 max_plausible_wh_per_hour: int = DEFAULT_MAX_PLAUSIBLE_WH_PER_HOUR) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.devices = devices
        self.reading_store = reading_store
        # Which hosts a gateway may name (ledger/gateway_hosts.py).
        self.gateway_hosts = gateway_hosts
        self.max_plausible_wh_per_hour = max_plausible_wh_per_hour

    def handlers(self) -> Mapping[type[Command], Handler]:
        """The commands this service carries out (``Ledger.execute`` routes them here)."""
        return {CreateSite: self.carry_out_create_site,
                AddBuilding: self.carry_out_add_building,
                AddUnit: self.carry_out_add_unit,
                RegisterGateway: self.carry_out_register_gateway,
                CreateTariff: self.carry_out_create_tariff,
                AddTariffVersion: self.carry_out_add_tariff_version,
                RegisterMeter: self.carry_out_register_meter,
                BindMeter: self.carry_out_bind_meter,
                UnbindMeter: self.carry_out_unbind_meter,
                AssignTariff: self.carry_out_assign_tariff,
                ReplaceMeter: self.carry_out_replace_meter,
                TakeReadings: self.carry_out_take_readings}

    # -- sites and gateways ----------------------------------------------------------

    def create_site(self, *, name: str, actor: dict, timezone: str = DEFAULT_TIMEZONE,
                    poll_interval_s: int = DEFAULT_POLL_INTERVAL_S,
                    idempotency_key: str | None = None) -> Site:
        return self.carry_out_create_site(CreateSite(name, timezone, poll_interval_s,
                                                     idempotency_key), actor)

    def carry_out_create_site(self, command: CreateSite, actor: dict) -> Site:
        key = command.idempotency_key
        site_id = account_id_for(f"site:{key}") if key else uuid4()
        new, site = command.decide(self.store.load, CreateContext(actor, site_id))
        if new:
            self.store.save_new(*new)
        return site

    def add_building(self, site_id: UUID, *, code: str, name: str, actor: dict) -> Site:
        return self.carry_out_add_building(AddBuilding(site_id, code, name), actor)

    def carry_out_add_building(self, command: AddBuilding, actor: dict) -> Site:
        changed, site = command.decide(self.store.load, ChangeContext(actor))
        self.bus.save_changed(*changed)
        return site

    def add_unit(self, site_id: UUID, *, code: str, building: str, floor: str,
                 area_m2: str | None, actor: dict) -> Site:
        return self.carry_out_add_unit(AddUnit(site_id, code, building, floor, area_m2),
                                       actor)

    def carry_out_add_unit(self, command: AddUnit, actor: dict) -> Site:
        changed, site = command.decide(self.store.load, ChangeContext(actor))
        self.bus.save_changed(*changed)
        return site

    def register_gateway(self, *, site_id: UUID, name: str, host: str | None,
                         port: int | None, protocol: str, actor: dict,
                         connect: str = "outbound", registration_id: str | None = None,
                         heartbeat: str | None = None, baud: int | None = None) -> Gateway:
        return self.carry_out_register_gateway(RegisterGateway(
            site_id, name, host, port, protocol, connect, registration_id, heartbeat, baud),
            actor)

    def carry_out_register_gateway(self, command: RegisterGateway, actor: dict) -> Gateway:
        refusal = None
        if command.names_a_host():
            # A name lookup: done here, its verdict raised where the decision checks it.
            try:
                self.gateway_hosts.check(command.host or "")
            except DomainError as error:
                refusal = error
        new, gateway = command.decide(self.store.load, GatewayContext(actor, refusal))
        if new:
            self.store.save_new(*new)
        return gateway

    # -- tariffs ---------------------------------------------------------------------

    def create_tariff(self, *, name: str, spec: TariffSpec, effective_from: datetime,
                      actor: dict, utility: str = "electricity",
                      idempotency_key: str | None = None) -> Tariff:
        return self.carry_out_create_tariff(CreateTariff(name, spec, effective_from, utility,
                                                         idempotency_key), actor)

    def carry_out_create_tariff(self, command: CreateTariff, actor: dict) -> Tariff:
        key = command.idempotency_key
        tariff_id = account_id_for(f"tariff:{key}") if key else uuid4()
        new, tariff = command.decide(self.store.load, CreateContext(actor, tariff_id))
        if new:
            self.store.save_new(*new)
        return tariff

    def add_tariff_version(self, tariff_id: UUID, *, effective_from: datetime,
                           spec: TariffSpec, actor: dict) -> Tariff:
        return self.carry_out_add_tariff_version(AddTariffVersion(tariff_id, effective_from,
                                                                  spec), actor)

    def carry_out_add_tariff_version(self, command: AddTariffVersion, actor: dict) -> Tariff:
        changed, tariff = command.decide(self.store.load, ChangeContext(actor))
        self.bus.save_changed(*changed)
        return tariff

    # -- meters ----------------------------------------------------------------------

    def register_meter(self, *, meter_no: str, kind: str, mode: str,
                       gateway_id: UUID | None, address: int | None, profile: str,
                       actor: dict, account_id: UUID | None = None, tariff_id: UUID | None = None,
                       ct_ratio: int = 1, site_id: UUID | None = None,
                       building: str | None = None, floor: str | None = None,
                       unit: str | None = None, tariff_from: datetime | None = None) -> Meter:
        return self.carry_out_register_meter(RegisterMeter(
            meter_no, kind, mode, gateway_id, address, profile, account_id, tariff_id,
            ct_ratio, site_id, building, floor, unit, tariff_from), actor)

    def carry_out_register_meter(self, command: RegisterMeter, actor: dict) -> Meter:
        new, meter = command.decide(self.store.load, self._meter_context(actor))
        self.store.save_new(*new)
        return meter

    def prepare_meter(self, *, meter_no: str, kind: str, mode: str,
                      gateway_id: UUID | None, address: int | None, profile: str,
                      actor: dict, account_id: UUID | None = None, tariff_id: UUID | None = None,
                      ct_ratio: int = 1, site_id: UUID | None = None,
                      building: str | None = None, floor: str | None = None,
                      unit: str | None = None, tariff_from: datetime | None = None,
                      pending_gateways: dict[UUID, Gateway] | None = None) -> Meter:
        """A new meter with its bindings, checked against what it refers to, not saved.

        ``pending_gateways`` are gateways being created in the same write."""
        return self.prepare(RegisterMeter(
            meter_no, kind, mode, gateway_id, address, profile, account_id, tariff_id,
            ct_ratio, site_id, building, floor, unit, tariff_from), actor, pending_gateways)

    def prepare(self, command: RegisterMeter, actor: dict,
                pending_gateways: Mapping[UUID, Gateway] | None = None) -> Meter:
        """The meter a registration would save, not saved (the sheet import saves many
        at once); ``pending_gateways`` are gateways being created in the same write."""
        load = self.store.load
        if pending_gateways:
            def load(aggregate_id: UUID, kind: type, missing: type[Exception]) -> Any:
                pending = pending_gateways.get(aggregate_id) if kind is Gateway else None
                return pending or self.store.load(aggregate_id, kind, missing)
        return command.prepare(load, self._meter_context(actor))

    def _meter_context(self, actor: dict) -> MeterContext:
        return MeterContext(actor, self.clock(), self.max_plausible_wh_per_hour)

    @staticmethod
    def get_meter_id(meter_no: str) -> UUID:
        return meter_id_for(check_meter_no(meter_no))

    def get_meter(self, meter_id: UUID) -> Meter:
        return self.store.load(meter_id, Meter, MeterNotFound)

    def bind_meter(self, meter_id: UUID, account_id: UUID, actor: dict) -> Meter:
        return self.carry_out_bind_meter(BindMeter(meter_id, account_id), actor)

    def carry_out_bind_meter(self, command: BindMeter, actor: dict) -> Meter:
        changed, meter = command.decide(self.store.load, ChangeContext(actor))
        self.bus.save_changed(*changed)
        return meter

    def unbind_meter(self, meter_id: UUID, actor: dict) -> Meter:
        return self.carry_out_unbind_meter(UnbindMeter(meter_id), actor)

    def carry_out_unbind_meter(self, command: UnbindMeter, actor: dict) -> Meter:
        changed, meter = command.decide(self.store.load, ChangeContext(actor))
        self.bus.save_changed(*changed)
        return meter

    def assign_tariff(self, meter_id: UUID, *, tariff_id: UUID,
                      effective_from: datetime, actor: dict) -> Meter:
        """Assign a tariff from an instant (at or after the last billed reading), and bill
        the readings held for want of a tariff that it now covers: in order, each once,
        in the same write."""
        return self.carry_out_assign_tariff(AssignTariff(meter_id, tariff_id, effective_from),
                                            actor)

    def carry_out_assign_tariff(self, command: AssignTariff, actor: dict) -> Meter:
        ctx = AssignmentContext(actor, self._reading_context())
        outcome = self.bus.write_many([(uuid4(), "tariff-assignment",
                                        lambda load: command.decide(load, ctx))])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        billed = outcome.result["billed"]
        if billed and self.reading_store is not None:
            self.reading_store.mark_billed(command.meter_id, billed)
        return self.get_meter(command.meter_id)

    def replace_meter(self, meter_id: UUID, *, new_meter_no: str,
                      final_reading: Reading, initial_reading: Reading, actor: dict,
                      gateway_id: UUID | None = None, address: int | None = None) -> Meter:
        """Charge the old meter's final reading, then carry account and tariff over to a
        new meter that starts from its own initial reading."""
        return self.carry_out_replace_meter(ReplaceMeter(
            meter_id, new_meter_no, final_reading, initial_reading, gateway_id, address), actor)

    def carry_out_replace_meter(self, command: ReplaceMeter, actor: dict) -> Meter:
        command.check()
        if self.store.find(meter_id_for(command.new_meter_no)) is not None:
            raise AlreadyExists(f"meter {command.new_meter_no} is registered already")
        command.check_order()
        final = self.carry_out_take_readings(
            command.final(self.get_meter(command.meter_id).meter_no)).answers[0]
        if final["status"] == "rejected":
            raise InvalidRequest(f"final reading refused: {final['reason']}")
        changed, new = command.decide(self.store.load, self._meter_context(actor))
        self.bus.save_changed(*changed)
        return new

    # -- readings --------------------------------------------------------------------

    def ingest_readings(self, items: Sequence[ReadingInput]) -> Ingested:
        """Store and bill a batch of readings; one answer per item, in order."""
        return self.carry_out_take_readings(TakeReadings(items))

    def carry_out_take_readings(self, command: TakeReadings,
                                actor: dict | None = None) -> Ingested:
        """Store and bill a batch of readings; one answer per item, in order. Charges are
        the metering system's whoever reports the readings (``actor`` is not recorded).

        Each reading is decided on its meter's billing cursor, so a reading is billed at
        most once whatever order, and however often, readings arrive; the charge's
        transaction id is fixed by (meter, read_at) as well.
        """
        command.check()
        items = command.items
        ctx = self._reading_context()
        now = ctx.now
        answers: list[dict[str, Any] | None] = [None] * len(items)
        # Per reading only its command and the decision handed to the bus: this runs for
        # every reading of every poll.
        charges = []
        for index, item in enumerate(items):
            problem = reading_problem(item, now)
            if problem:
                answers[index] = _answer(item, "rejected", problem)
                continue
            charge = ChargeReading(meter_id_for(item.meter_no), item)
            charges.append((index, charge, lambda load, charge=charge: charge.decide(load, ctx)))
        if len(charges) >= PRELOAD_FROM_READINGS and len(self.bus.committers) == 1:
            self.bus.committers[0].preload([c.meter_id for _, c, _ in charges],
                                           _named_by_meter)
        outcomes = self.bus.write_many([(c.transaction_id(), "reading", decide)
                                        for _, c, decide in charges])
        rows: list[tuple[int, StoredReading]] = []
        positions = []
        for (index, charge, _), outcome in zip(charges, outcomes):
            item = items[index]
            if isinstance(outcome, BaseException):
                reason = outcome.detail if isinstance(outcome, DomainError) else "failed"
                answers[index] = _answer(item, "rejected", reason)
                continue
            result = outcome.result
            positions.append(outcome.position or 0)
            answers[index] = _answer(item, *_status(result), result)
            if result["billing"] != "rejected":
                rows.append((index, StoredReading(charge.meter_id, item.meter_no, item,
                                                  result["billing"], now)))
        if self.reading_store is not None and rows:
            verdicts = self.reading_store.store([row for _, row in rows])
            for (index, _), verdict in zip(rows, verdicts):
                if verdict == "conflict" and answers[index]["billing"] in ("late", "duplicate"):
                    answers[index] = _answer(items[index], "rejected",
                                             "another value is stored for this time")
        assert all(answer is not None for answer in answers)
        return Ingested(answers, max(positions, default=0) or None)  # type: ignore[arg-type]

    def _reading_context(self) -> ReadingContext:
        return ReadingContext(self.clock(), self.devices, self.max_plausible_wh_per_hour)

    # -- helpers ---------------------------------------------------------------------

    def get_site(self, site_id: UUID) -> Site:
        return self.store.load(site_id, Site, SiteNotFound)

    def get_gateway(self, gateway_id: UUID) -> Gateway:
        return self.store.load(gateway_id, Gateway, GatewayNotFound)

    def get_tariff(self, tariff_id: UUID) -> Tariff:
        return self.store.load(tariff_id, Tariff, TariffNotFound)


def _named_by_meter(aggregate: Any) -> list[UUID]:
    if not isinstance(aggregate, Meter):
        return []
    return [i for i in (aggregate.account_id, aggregate.site_id, *aggregate.tariff_ids()) if i]


def _status(result: dict[str, Any]) -> tuple[str, str | None]:
    billing = result["billing"]
    if billing == "duplicate":
        return "duplicate", None
    if billing == "rejected":
        return "rejected", result["reason"]
    return "accepted", result["reason"]


def _answer(item: ReadingInput, status: str, reason: str | None,
            result: dict[str, Any] | None = None) -> dict[str, Any]:
    result = result or {}
    return {"meter_no": item.meter_no, "read_at": item.read_at, "status": status,
            "total": item.total, "kind": result.get("kind"),
            "reason": reason, "billing": result.get("billing", "rejected"
                                                    if status == "rejected" else None),
            "energy_wh": result.get("energy_wh", 0), "charge_fen": result.get("charge_fen", 0),
            "transaction_id": result.get("transaction_id")}
