"""Sites, gateways, meters, tariffs and readings: the commands of the metering side.

A service over the ledger's event store and command bus, so that meters, tariffs and the
consumption charges they cause share one event log (and one notification sequence) with
the money. What a poll's reading also means for the relay (devices' bookkeeping) comes in
through the constructor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID, uuid4

from domain.account import Account, MoneyContext
from domain.chart import Wallet
from domain.errors import (
    AccountNotFound,
    AlreadyExists,
    DomainError,
    GatewayNotFound,
    InvalidRequest,
    MeterNotFound,
    SiteNotFound,
    TariffNotFound,
)
from domain.meter import PROFILES as METER_PROFILES
from domain.meter import Meter, Reading, charge_id_for, check_meter_no, meter_id_for
from domain.site import DEFAULT_POLL_INTERVAL_S, DEFAULT_TIMEZONE, Gateway, Site
from domain.tariff import Tariff, TariffSpec
from domain.transaction import account_id_for
from ledger.commands import Command, Handler
from ledger.clock import Clock
from ledger.core.bus import CommandBus
from ledger.core.store import EventStore
from ledger.core.types import Loader
from ledger.gateway_hosts import DEFAULT_POLICY, GatewayHostPolicy
from ledger.relays import zone_of


SYSTEM_ACTOR = {"kind": "system", "id": "metering"}
DEFAULT_MAX_PLAUSIBLE_WH_PER_HOUR = 1_000_000  # 1 MW on one meter
MAX_READING_FUTURE_SKEW = timedelta(minutes=5)
MAX_READINGS_PER_BATCH = 20_000
PRELOAD_FROM_READINGS = 100  # batches this large warm the committer in bulk first


@dataclass(frozen=True)
class ReadingInput:
    """One item of a readings batch, already parsed into register units."""

    meter_no: str
    read_at: datetime
    total: int
    bands: dict[str, int] | None = None
    power_w: int | None = None
    voltage_dv: int | None = None
    current_ca: int | None = None
    relay: str | None = None
    from_poll: bool = False  # read by the poller: also reconcile the relay, check overload


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


class PollBookkeeper(Protocol):
    """After a good poll: back online, the relay reconciled, a trip on overload (devices).

    Returns the new aggregates (commands) to save with the meter."""

    def poll_bookkeeping(self, meter: Meter, reported_relay: str | None,
                         power_w: int | None, at: datetime, load: Loader) -> list[Any]: ...


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

    # -- sites and gateways ----------------------------------------------------------

    def handlers(self) -> Mapping[type[Command], Handler]:
        """The commands this service carries out (``Ledger.execute`` routes them here)."""
        return {}

    def create_site(self, *, name: str, actor: dict, timezone: str = DEFAULT_TIMEZONE,
                    poll_interval_s: int = DEFAULT_POLL_INTERVAL_S,
                    idempotency_key: str | None = None) -> Site:
        site_id = account_id_for(f"site:{idempotency_key}") if idempotency_key else uuid4()
        existing = self.store.find(site_id)
        if existing is not None:
            return existing
        site = Site.create(site_id=site_id, name=name, timezone=timezone,
                           poll_interval_s=poll_interval_s, actor=actor)
        self.store.save_new(site)
        return site

    def add_building(self, site_id: UUID, *, code: str, name: str, actor: dict) -> Site:
        site = self.store.load(site_id, Site, SiteNotFound)
        site.add_building(code, name, actor)
        self.bus.save_changed(site)
        return site

    def add_unit(self, site_id: UUID, *, code: str, building: str, floor: str,
                 area_m2: str | None, actor: dict) -> Site:
        site = self.store.load(site_id, Site, SiteNotFound)
        site.add_unit(code, building, floor, area_m2, actor)
        self.bus.save_changed(site)
        return site

    def register_gateway(self, *, site_id: UUID, name: str, host: str | None,
                         port: int | None, protocol: str, actor: dict,
                         connect: str = "outbound", registration_id: str | None = None,
                         heartbeat: str | None = None, baud: int | None = None) -> Gateway:
        self.store.load(site_id, Site, SiteNotFound)
        connection = {"connect": connect, "registration_id": registration_id,
                      "heartbeat": heartbeat, "baud": baud}
        gateway = Gateway.register(site_id=site_id, name=name, host=host, port=port,
                                   protocol=protocol, actor=actor, **connection)
        if gateway.connect == "outbound":  # an inbound DTU has no host to check
            self.gateway_hosts.check(gateway.host)
        existing = self.store.find(gateway.id)
        if existing is not None:
            if existing.same_as(host, port, protocol, **connection):
                return existing
            raise AlreadyExists(f"gateway {name!r} exists at this site with another address")
        self.store.save_new(gateway)
        return gateway

    # -- tariffs ---------------------------------------------------------------------

    def create_tariff(self, *, name: str, spec: TariffSpec, effective_from: datetime,
                      actor: dict, utility: str = "electricity",
                      idempotency_key: str | None = None) -> Tariff:
        tariff_id = account_id_for(f"tariff:{idempotency_key}") if idempotency_key else uuid4()
        existing = self.store.find(tariff_id)
        if existing is not None:
            return existing
        tariff = Tariff.create(tariff_id=tariff_id, name=name, utility=utility,
                               effective_from=effective_from, spec=spec, actor=actor)
        self.store.save_new(tariff)
        return tariff

    def add_tariff_version(self, tariff_id: UUID, *, effective_from: datetime,
                           spec: TariffSpec, actor: dict) -> Tariff:
        tariff = self.store.load(tariff_id, Tariff, TariffNotFound)
        tariff.add_version(effective_from, spec, actor)
        self.bus.save_changed(tariff)
        return tariff

    # -- meters ----------------------------------------------------------------------

    def register_meter(self, *, meter_no: str, kind: str, mode: str,
                       gateway_id: UUID | None, address: int | None, profile: str,
                       actor: dict, account_id: UUID | None = None, tariff_id: UUID | None = None,
                       ct_ratio: int = 1, site_id: UUID | None = None,
                       building: str | None = None, floor: str | None = None,
                       unit: str | None = None, tariff_from: datetime | None = None) -> Meter:
        meter = self.prepare_meter(
            meter_no=meter_no, kind=kind, mode=mode, gateway_id=gateway_id, address=address,
            profile=profile, actor=actor, account_id=account_id, tariff_id=tariff_id,
            ct_ratio=ct_ratio, site_id=site_id, building=building, floor=floor, unit=unit,
            tariff_from=tariff_from)
        if self.store.find(meter.id) is not None:
            raise AlreadyExists(f"meter {meter_no} is registered already")
        self.store.save_new(meter)
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
        if gateway_id is not None:
            gateway = (pending_gateways or {}).get(gateway_id) or \
                self.store.load(gateway_id, Gateway, GatewayNotFound)
            if site_id is not None and site_id != gateway.site_id:
                raise InvalidRequest("the gateway belongs to another site")
            site_id = gateway.site_id
            needs = METER_PROFILES.get(profile)
            if needs is not None and needs != gateway.protocol:
                raise InvalidRequest(f"profile {profile} needs a {needs} gateway; "
                                     f"this one speaks {gateway.protocol}")
        if site_id is not None:
            self.store.load(site_id, Site, SiteNotFound)
        meter = Meter.register(meter_no=meter_no, kind=kind, mode=mode, site_id=site_id,
                               gateway_id=gateway_id, address=address, profile=profile,
                               ct_ratio=ct_ratio, building=building, floor=floor, unit=unit,
                               actor=actor)
        if account_id is not None:
            if self.store.load(account_id, Account, AccountNotFound).is_closed:
                raise InvalidRequest("a meter cannot be bound to a closed account")
            meter.bind(account_id, actor)
        if tariff_id is not None:
            tariff = self.store.load(tariff_id, Tariff, TariffNotFound)
            if tariff.utility != kind:
                raise InvalidRequest(f"a {tariff.utility} tariff cannot price a {kind} meter")
            meter.assign_tariff(tariff_id, tariff_from or self.clock(), actor,
                                from_first_reading=tariff_from is None)
        return meter

    @staticmethod
    def get_meter_id(meter_no: str) -> UUID:
        return meter_id_for(check_meter_no(meter_no))

    def get_meter(self, meter_id: UUID) -> Meter:
        return self.store.load(meter_id, Meter, MeterNotFound)

    def bind_meter(self, meter_id: UUID, account_id: UUID, actor: dict) -> Meter:
        meter = self.get_meter(meter_id)
        if self.store.load(account_id, Account, AccountNotFound).is_closed:
            raise InvalidRequest("a meter cannot be bound to a closed account")
        meter.bind(account_id, actor)
        self.bus.save_changed(meter)
        return meter

    def unbind_meter(self, meter_id: UUID, actor: dict) -> Meter:
        meter = self.get_meter(meter_id)
        meter.unbind(actor)
        self.bus.save_changed(meter)
        return meter

    def assign_tariff(self, meter_id: UUID, *, tariff_id: UUID,
                      effective_from: datetime, actor: dict) -> Meter:
        """Assign a tariff from an instant (at or after the last billed reading), and bill
        the readings held for want of a tariff that it now covers: in order, each once,
        in the same write."""
        now = self.clock()

        def decide(load: Loader) -> tuple[list[Any], dict[str, Any]]:
            load = _same_instances(load)
            meter = load(meter_id, Meter, MeterNotFound)
            tariff = load(tariff_id, Tariff, TariffNotFound)
            if tariff.utility != meter.kind:
                raise InvalidRequest(f"a {tariff.utility} tariff cannot price a "
                                     f"{meter.kind} meter")
            meter.assign_tariff(tariff_id, effective_from, actor)
            if meter.unpriced:
                tariffs = {tid: load(tid, Tariff, TariffNotFound) for tid in meter.tariff_ids()}
                meter.price_unpriced(
                    tariff_at=_tariff_lookup(meter, tariffs), zone=zone_of(meter, load),
                    tariff_changes=[when for when, _ in meter.tariffs] + [
                        v["effective_from"] for t in tariffs.values() for v in t.versions])
            changed: dict[UUID, Any] = {meter.id: meter}
            billed: list[datetime] = []
            for held in list(meter.waiting):
                item = ReadingInput(meter.meter_no, held["read_at"], held["total"],
                                    held["bands"])
                aggregates, result = self._decide_reading(meter.id, item, now)(load)
                for aggregate in aggregates:
                    changed.setdefault(aggregate.id, aggregate)
                if result["billing"] != "charged":
                    break  # still not covered: it waits, and the later ones behind it
                billed.append(held["read_at"])
            return list(changed.values()), {"billed": billed}

        outcome = self.bus.write_many([(uuid4(), "tariff-assignment", decide)])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        billed = outcome.result["billed"]
        if billed and self.reading_store is not None:
            self.reading_store.mark_billed(meter_id, billed)
        return self.get_meter(meter_id)

    def replace_meter(self, meter_id: UUID, *, new_meter_no: str,
                      final_reading: Reading, initial_reading: Reading, actor: dict,
                      gateway_id: UUID | None = None, address: int | None = None) -> Meter:
        """Charge the old meter's final reading, then carry account and tariff over to a
        new meter that starts from its own initial reading."""
        check_meter_no(new_meter_no)
        if self.store.find(meter_id_for(new_meter_no)) is not None:
            raise AlreadyExists(f"meter {new_meter_no} is registered already")
        if initial_reading.read_at < final_reading.read_at:
            raise InvalidRequest("the new meter's first reading cannot precede the old one's "
                                 "last")
        final = self.ingest_readings([ReadingInput(self.get_meter(meter_id).meter_no,
                                                   final_reading.read_at, final_reading.total,
                                                   final_reading.bands)]).answers[0]
        if final["status"] == "rejected":
            raise InvalidRequest(f"final reading refused: {final['reason']}")
        old = self.get_meter(meter_id)
        new = Meter.register(meter_no=new_meter_no, kind=old.kind, mode=old.mode,
                             site_id=old.site_id, gateway_id=gateway_id or old.gateway_id,
                             address=address or old.address, profile=old.profile,
                             ct_ratio=old.ct_ratio, building=old.building, floor=old.floor,
                             unit=old.unit, actor=actor)
        if old.account_id is not None:
            new.bind(old.account_id, actor)
        tariff_now = old.tariff_at(initial_reading.read_at)
        if tariff_now is not None:
            new.assign_tariff(tariff_now, initial_reading.read_at, actor)
        zone = zone_of(old, self.store.load)
        new.take_reading(initial_reading, tariff_at=lambda _: None, tariff_changes=[],
                         zone=zone, max_wh_per_hour=self.max_plausible_wh_per_hour)
        old.replace_by(new.id, initial_reading.read_at, actor)
        self.bus.save_changed(old, new)
        return new

    # -- readings --------------------------------------------------------------------

    def ingest_readings(self, items: Sequence[ReadingInput]) -> Ingested:
        """Store and bill a batch of readings; one answer per item, in order.

        Each reading is decided on its meter's billing cursor, so a reading is billed at
        most once whatever order, and however often, readings arrive; the charge's
        transaction id is fixed by (meter, read_at) as well.
        """
        if len(items) > MAX_READINGS_PER_BATCH:
            raise InvalidRequest(f"at most {MAX_READINGS_PER_BATCH} readings per batch")
        now = self.clock()
        answers: list[dict[str, Any] | None] = [None] * len(items)
        commands = []
        for index, item in enumerate(items):
            problem = _check_reading(item, now)
            if problem:
                answers[index] = _answer(item, "rejected", problem)
                continue
            meter_id = meter_id_for(item.meter_no)
            commands.append((index, charge_id_for(meter_id, item.read_at), "reading",
                             self._decide_reading(meter_id, item, now)))
        if len(commands) >= PRELOAD_FROM_READINGS and len(self.bus.committers) == 1:
            self.bus.committers[0].preload([meter_id_for(items[i].meter_no) for i, *_ in commands],
                                       _named_by_meter)
        outcomes = self.bus.write_many([(t, d, f) for _, t, d, f in commands])
        rows: list[tuple[int, StoredReading]] = []
        positions = []
        for (index, _, _, _), outcome in zip(commands, outcomes):
            item = items[index]
            if isinstance(outcome, BaseException):
                reason = outcome.detail if isinstance(outcome, DomainError) else "failed"
                answers[index] = _answer(item, "rejected", reason)
                continue
            result = outcome.result
            positions.append(outcome.position or 0)
            answers[index] = _answer(item, *_status(result), result)
            if result["billing"] != "rejected":
                rows.append((index, StoredReading(meter_id_for(item.meter_no), item.meter_no,
                                                  item, result["billing"], now)))
        if self.reading_store is not None and rows:
            verdicts = self.reading_store.store([row for _, row in rows])
            for (index, _), verdict in zip(rows, verdicts):
                if verdict == "conflict" and answers[index]["billing"] in ("late", "duplicate"):
                    answers[index] = _answer(items[index], "rejected",
                                             "another value is stored for this time")
        assert all(answer is not None for answer in answers)
        return Ingested(answers, max(positions, default=0) or None)  # type: ignore[arg-type]

    def _decide_reading(self, meter_id: UUID, item: ReadingInput, now: datetime):
        reading = Reading(item.read_at, item.total, item.bands)

        def decide(load: Loader) -> tuple[list[Any], dict[str, Any]]:
            try:
                meter = load(meter_id, Meter, MeterNotFound)
            except MeterNotFound:
                raise MeterNotFound(f"meter {item.meter_no} does not exist") from None
            zone = zone_of(meter, load)
            tariffs = {tid: load(tid, Tariff, TariffNotFound) for tid in meter.tariff_ids()}
            account = None
            if meter.mode == "prepaid" and meter.account_id is not None:
                account = load(meter.account_id, Account, AccountNotFound)
                if account.is_closed:
                    account = None
            changes = [when for when, _ in meter.tariffs] + [
                v["effective_from"] for t in tariffs.values() for v in t.versions]
            result = meter.take_reading(
                reading, tariff_at=_tariff_lookup(meter, tariffs), tariff_changes=changes,
                zone=zone, max_wh_per_hour=self.max_plausible_wh_per_hour,
                chargeable=account is not None)
            aggregates: list[Any] = [meter]
            if item.from_poll:
                aggregates += self.devices.poll_bookkeeping(meter, item.relay,
                                                            item.power_w, item.read_at, load)
            if result.charge_fen > 0:
                assert account is not None and result.transaction_id is not None
                ctx = MoneyContext(result.transaction_id, reading.read_at, now, SYSTEM_ACTOR)
                account.charge_consumption(ctx, wallet=Wallet(meter.kind),
                                           amount_fen=result.charge_fen,
                                           meter_no=meter.meter_no)
                aggregates.append(account)
            return aggregates, {
                "billing": result.status, "reason": result.reason, "kind": meter.kind,
                "energy_wh": result.energy_wh, "charge_fen": result.charge_fen,
                "transaction_id": str(result.transaction_id) if result.charge_fen else None}

        return decide

    # -- helpers ---------------------------------------------------------------------

    def get_site(self, site_id: UUID) -> Site:
        return self.store.load(site_id, Site, SiteNotFound)

    def get_gateway(self, gateway_id: UUID) -> Gateway:
        return self.store.load(gateway_id, Gateway, GatewayNotFound)

    def get_tariff(self, tariff_id: UUID) -> Tariff:
        return self.store.load(tariff_id, Tariff, TariffNotFound)


def _same_instances(load: Loader) -> Loader:
    """A loader that gives the same object for the same id, so that several decisions
    in one write (a tariff assignment and the readings it bills) build on each other."""
    seen: dict[UUID, Any] = {}

    def cached(aggregate_id: UUID, kind: type, missing: type[DomainError]) -> Any:
        if aggregate_id not in seen:
            seen[aggregate_id] = load(aggregate_id, kind, missing)
        return seen[aggregate_id]

    return cached


def _named_by_meter(aggregate: Any) -> list[UUID]:
    if not isinstance(aggregate, Meter):
        return []
    return [i for i in (aggregate.account_id, aggregate.site_id, *aggregate.tariff_ids()) if i]


_SPECS: dict[tuple[UUID, int], TariffSpec] = {}


def _tariff_lookup(meter: Meter, tariffs: dict[UUID, Tariff]):
    def tariff_at(when: datetime):
        tariff_id = meter.tariff_at(when)
        if tariff_id is None:
            return None
        tariff = tariffs[tariff_id]
        version = None
        for v in tariff.versions:
            if v["effective_from"] <= when:
                version = v
        if version is None:
            return None
        key = (tariff_id, version["version"])
        spec = _SPECS.get(key)
        if spec is None:
            spec = _SPECS[key] = TariffSpec.from_dict(version["spec"])
        return str(tariff_id), version["version"], spec

    return tariff_at


def _check_reading(item: ReadingInput, now: datetime) -> str | None:
    try:
        check_meter_no(item.meter_no)
    except InvalidRequest as error:
        return error.detail
    if item.read_at.tzinfo is None:
        return "read_at needs a time zone offset"
    if item.read_at > now + MAX_READING_FUTURE_SKEW:
        return "read_at lies in the future"
    if item.total < 0 or any(v < 0 for v in (item.bands or {}).values()):
        return "registers cannot be negative"
    return None


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
