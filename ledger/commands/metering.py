"""Metering commands: sites, gateways, tariffs, meters and the readings that bill them.

Each command is a frozen dataclass; its ``decide(load, ctx)`` is pure: it sees stored
state only through ``load`` and everything else (the actor, the time, ids fixed for it,
the limits it obeys) in its context, and returns the aggregates to save and the answer.

A batch of readings (``TakeReadings``) is carried out reading by reading: each reading
that passes the checks needing no stored state becomes a ``ChargeReading``, whose decision
the group committer runs with the others of its meter's shard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol
from uuid import UUID

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
from domain.meter import Meter, Reading, charge_id_for, check_meter_no
from domain.site import DEFAULT_POLL_INTERVAL_S, DEFAULT_TIMEZONE, Gateway, Site
from domain.tariff import Tariff, TariffSpec
from ledger.commands.base import Command
from ledger.core.types import Loader
from ledger.relays import zone_of

SYSTEM_ACTOR = {"kind": "system", "id": "metering"}
DEFAULT_MAX_PLAUSIBLE_WH_PER_HOUR = 1_000_000  # 1 MW on one meter
MAX_READING_FUTURE_SKEW = timedelta(minutes=5)
MAX_READINGS_PER_BATCH = 20_000

Decision = tuple[list[Any], Any]


# -- contexts --------------------------------------------------------------------------

@dataclass(frozen=True)
class ChangeContext:
    """What a change to one site, tariff or meter needs from outside: who asks."""

    actor: dict


@dataclass(frozen=True)
class CreateContext:
    """Who asks, and the id the new site or tariff gets (from the key, or a fresh one)."""

    actor: dict
    new_id: UUID


@dataclass(frozen=True)
class GatewayContext:
    """Who asks, and the host policy's refusal of the gateway's host (a name lookup the
    service does before deciding), raised where the registration checks it."""

    actor: dict
    host_refusal: DomainError | None = None


@dataclass(frozen=True)
class MeterContext:
    """Who asks, the time (a tariff given without an instant applies from now) and the
    plausibility limit a replacement meter's first reading is taken under."""

    actor: dict
    now: datetime
    max_plausible_wh_per_hour: int = DEFAULT_MAX_PLAUSIBLE_WH_PER_HOUR


class PollBookkeeper(Protocol):
    """After a good poll: back online, the relay reconciled, a trip on overload (devices).

    A decision on the loader like any other: returns the new aggregates (commands) to save
    with the meter."""

    def poll_bookkeeping(self, meter: Meter, reported_relay: str | None,
                         power_w: int | None, at: datetime, load: Loader) -> list[Any]: ...


@dataclass(frozen=True)
class ReadingContext:
    """What charging a reading needs from outside: the time of the batch, the
    plausibility limit and the devices side's bookkeeping of a good poll."""

    now: datetime
    devices: PollBookkeeper
    max_plausible_wh_per_hour: int = DEFAULT_MAX_PLAUSIBLE_WH_PER_HOUR


@dataclass(frozen=True)
class AssignmentContext:
    """Who asks, and how the readings a new tariff now covers are charged."""

    actor: dict
    readings: ReadingContext


# -- sites and gateways ----------------------------------------------------------------

@dataclass(frozen=True)
class CreateSite(Command):
    action: ClassVar[str] = "create_site"
    name: str
    timezone: str = DEFAULT_TIMEZONE
    poll_interval_s: int = DEFAULT_POLL_INTERVAL_S
    idempotency_key: str | None = None

    def decide(self, load: Loader, ctx: CreateContext) -> Decision:
        """A new site, or the one a repeated key created."""
        existing = found(load, ctx.new_id, Site, SiteNotFound)
        if existing is not None:
            return [], existing
        site = Site.create(site_id=ctx.new_id, name=self.name, timezone=self.timezone,
                           poll_interval_s=self.poll_interval_s, actor=ctx.actor)
        return [site], site


@dataclass(frozen=True)
class AddBuilding(Command):
    action: ClassVar[str] = "add_building"
    repeat: ClassVar[str] = "refused: a site has each building code once"
    site_id: UUID
    code: str
    name: str

    def decide(self, load: Loader, ctx: ChangeContext) -> Decision:
        site = load(self.site_id, Site, SiteNotFound)
        site.add_building(self.code, self.name, ctx.actor)
        return [site], site


@dataclass(frozen=True)
class AddUnit(Command):
    action: ClassVar[str] = "add_unit"
    repeat: ClassVar[str] = "refused: a site has each unit code once"
    site_id: UUID
    code: str
    building: str
    floor: str
    area_m2: str | None = None

    def decide(self, load: Loader, ctx: ChangeContext) -> Decision:
        site = load(self.site_id, Site, SiteNotFound)
        site.add_unit(self.code, self.building, self.floor, self.area_m2, ctx.actor)
        return [site], site


@dataclass(frozen=True)
class RegisterGateway(Command):
    action: ClassVar[str] = "register_gateway"
    repeat: ClassVar[str] = "answers the gateway registered: its id is the site and the name"
    site_id: UUID
    name: str
    host: str | None
    port: int | None
    protocol: str
    connect: str = "outbound"
    registration_id: str | None = None
    heartbeat: str | None = None
    baud: int | None = None

    def connection(self) -> dict[str, Any]:
        return {"connect": self.connect, "registration_id": self.registration_id,
                "heartbeat": self.heartbeat, "baud": self.baud}

    def names_a_host(self) -> bool:
        """Whether the host policy has a host to check (an inbound DTU has none)."""
        return self.connect == "outbound" and bool((self.host or "").strip())

    def decide(self, load: Loader, ctx: GatewayContext) -> Decision:
        """A new gateway, or the same one registered before; another gateway of that
        name at the site with another address is refused."""
        load(self.site_id, Site, SiteNotFound)
        gateway = Gateway.register(site_id=self.site_id, name=self.name, host=self.host,
                                   port=self.port, protocol=self.protocol, actor=ctx.actor,
                                   **self.connection())
        if gateway.connect == "outbound" and ctx.host_refusal is not None:
            raise ctx.host_refusal
        existing = found(load, gateway.id, Gateway, GatewayNotFound)
        if existing is not None:
            if existing.same_as(self.host, self.port, self.protocol, **self.connection()):
                return [], existing
            raise AlreadyExists(f"gateway {self.name!r} exists at this site with another "
                                "address")
        return [gateway], gateway


# -- tariffs ---------------------------------------------------------------------------

@dataclass(frozen=True)
class CreateTariff(Command):
    action: ClassVar[str] = "create_tariff"
    name: str
    spec: TariffSpec
    effective_from: datetime
    utility: str = "electricity"
    idempotency_key: str | None = None

    def decide(self, load: Loader, ctx: CreateContext) -> Decision:
        """A new tariff, or the one a repeated key created."""
        existing = found(load, ctx.new_id, Tariff, TariffNotFound)
        if existing is not None:
            return [], existing
        tariff = Tariff.create(tariff_id=ctx.new_id, name=self.name, utility=self.utility,
                               effective_from=self.effective_from, spec=self.spec,
                               actor=ctx.actor)
        return [tariff], tariff


@dataclass(frozen=True)
class AddTariffVersion(Command):
    action: ClassVar[str] = "add_tariff_version"
    repeat: ClassVar[str] = "refused: a version takes effect after the latest one"
    tariff_id: UUID
    effective_from: datetime
    spec: TariffSpec

    def decide(self, load: Loader, ctx: ChangeContext) -> Decision:
        tariff = load(self.tariff_id, Tariff, TariffNotFound)
        tariff.add_version(self.effective_from, self.spec, ctx.actor)
        return [tariff], tariff


# -- meters ----------------------------------------------------------------------------

@dataclass(frozen=True)
class RegisterMeter(Command):
    """A new meter with its bindings, checked against what it refers to."""

    action: ClassVar[str] = "register_meter"
    repeat: ClassVar[str] = "refused: a meter number is registered once (409)"
    meter_no: str
    kind: str
    mode: str
    gateway_id: UUID | None
    address: int | None
    profile: str
    account_id: UUID | None = None
    tariff_id: UUID | None = None
    ct_ratio: int = 1
    site_id: UUID | None = None
    building: str | None = None
    floor: str | None = None
    unit: str | None = None
    tariff_from: datetime | None = None

    def decide(self, load: Loader, ctx: MeterContext) -> Decision:
        meter = self.prepare(load, ctx)
        if found(load, meter.id, Meter, MeterNotFound) is not None:
            raise AlreadyExists(f"meter {self.meter_no} is registered already")
        return [meter], meter

    def prepare(self, load: Loader, ctx: MeterContext) -> Meter:
        """The meter, not yet saved (the sheet import saves many in one write)."""
        site_id = self.site_id
        if self.gateway_id is not None:
            gateway = load(self.gateway_id, Gateway, GatewayNotFound)
            if site_id is not None and site_id != gateway.site_id:
                raise InvalidRequest("the gateway belongs to another site")
            site_id = gateway.site_id
            needs = METER_PROFILES.get(self.profile)
            if needs is not None and needs != gateway.protocol:
                raise InvalidRequest(f"profile {self.profile} needs a {needs} gateway; "
                                     f"this one speaks {gateway.protocol}")
        if site_id is not None:
            load(site_id, Site, SiteNotFound)
        meter = Meter.register(meter_no=self.meter_no, kind=self.kind, mode=self.mode,
                               site_id=site_id, gateway_id=self.gateway_id,
                               address=self.address, profile=self.profile,
                               ct_ratio=self.ct_ratio, building=self.building,
                               floor=self.floor, unit=self.unit, actor=ctx.actor)
        if self.account_id is not None:
            if load(self.account_id, Account, AccountNotFound).is_closed:
                raise InvalidRequest("a meter cannot be bound to a closed account")
            meter.bind(self.account_id, ctx.actor)
        if self.tariff_id is not None:
            tariff = load(self.tariff_id, Tariff, TariffNotFound)
            if tariff.utility != self.kind:
                raise InvalidRequest(f"a {tariff.utility} tariff cannot price a {self.kind} "
                                     "meter")
            meter.assign_tariff(self.tariff_id, self.tariff_from or ctx.now, ctx.actor,
                                from_first_reading=self.tariff_from is None)
        return meter


@dataclass(frozen=True)
class BindMeter(Command):
    action: ClassVar[str] = "bind_meter"
    repeat: ClassVar[str] = "records nothing more: a meter bound to the account stays bound"
    meter_id: UUID
    account_id: UUID

    def decide(self, load: Loader, ctx: ChangeContext) -> Decision:
        meter = load(self.meter_id, Meter, MeterNotFound)
        if load(self.account_id, Account, AccountNotFound).is_closed:
            raise InvalidRequest("a meter cannot be bound to a closed account")
        meter.bind(self.account_id, ctx.actor)
        return [meter], meter


@dataclass(frozen=True)
class UnbindMeter(Command):
    action: ClassVar[str] = "unbind_meter"
    repeat: ClassVar[str] = "refused: a meter not bound cannot be unbound"
    meter_id: UUID

    def decide(self, load: Loader, ctx: ChangeContext) -> Decision:
        meter = load(self.meter_id, Meter, MeterNotFound)
        meter.unbind(ctx.actor)
        return [meter], meter


@dataclass(frozen=True)
class AssignTariff(Command):
    """A tariff from an instant (at or after the last billed reading); the readings held
    for want of a tariff that it now covers are charged, in order, each once, in the
    same write."""

    action: ClassVar[str] = "assign_tariff"
    repeat: ClassVar[str] = ("assigns the same tariff from the same instant again; held readings"
                              " are charged once")
    meter_id: UUID
    tariff_id: UUID
    effective_from: datetime

    def decide(self, load: Loader, ctx: AssignmentContext) -> Decision:
        """Answers ``{"billed": [read_at, ...]}``: the held readings now charged."""
        load = same_instances(load)
        meter = load(self.meter_id, Meter, MeterNotFound)
        tariff = load(self.tariff_id, Tariff, TariffNotFound)
        if tariff.utility != meter.kind:
            raise InvalidRequest(f"a {tariff.utility} tariff cannot price a "
                                 f"{meter.kind} meter")
        meter.assign_tariff(self.tariff_id, self.effective_from, ctx.actor)
        if meter.unpriced:
            tariffs = {tid: load(tid, Tariff, TariffNotFound) for tid in meter.tariff_ids()}
            meter.price_unpriced(
                tariff_at=tariff_lookup(meter, tariffs), zone=zone_of(meter, load),
                tariff_changes=[when for when, _ in meter.tariffs] + [
                    v["effective_from"] for t in tariffs.values() for v in t.versions])
        changed: dict[UUID, Any] = {meter.id: meter}
        billed: list[datetime] = []
        for held in list(meter.waiting):
            item = ReadingInput(meter.meter_no, held["read_at"], held["total"],
                                held["bands"])
            aggregates, result = ChargeReading(meter.id, item).decide(load, ctx.readings)
            for aggregate in aggregates:
                changed.setdefault(aggregate.id, aggregate)
            if result["billing"] != "charged":
                break  # still not covered: it waits, and the later ones behind it
            billed.append(held["read_at"])
        return list(changed.values()), {"billed": billed}


@dataclass(frozen=True)
class ReplaceMeter(Command):
    """Charge the old meter's final reading, then carry account and tariff over to a
    new meter that starts from its own initial reading."""

    action: ClassVar[str] = "replace_meter"
    repeat: ClassVar[str] = "refused: a replaced meter is not replaced again"
    meter_id: UUID
    new_meter_no: str
    final_reading: Reading
    initial_reading: Reading
    gateway_id: UUID | None = None
    address: int | None = None

    def check(self) -> None:
        check_meter_no(self.new_meter_no)

    def check_order(self) -> None:
        if self.initial_reading.read_at < self.final_reading.read_at:
            raise InvalidRequest("the new meter's first reading cannot precede the old one's "
                                 "last")

    def final(self, meter_no: str) -> TakeReadings:
        """The old meter's last reading, charged (in a write of its own) before the swap."""
        reading = self.final_reading
        return TakeReadings([ReadingInput(meter_no, reading.read_at, reading.total,
                                          reading.bands)])

    def decide(self, load: Loader, ctx: MeterContext) -> Decision:
        """The swap, once the final reading is charged: answers the new meter."""
        old = load(self.meter_id, Meter, MeterNotFound)
        initial = self.initial_reading
        new = Meter.register(meter_no=self.new_meter_no, kind=old.kind, mode=old.mode,
                             site_id=old.site_id, gateway_id=self.gateway_id or old.gateway_id,
                             address=self.address or old.address, profile=old.profile,
                             ct_ratio=old.ct_ratio, building=old.building, floor=old.floor,
                             unit=old.unit, actor=ctx.actor)
        if old.account_id is not None:
            new.bind(old.account_id, ctx.actor)
        tariff_now = old.tariff_at(initial.read_at)
        if tariff_now is not None:
            new.assign_tariff(tariff_now, initial.read_at, ctx.actor)
        new.take_reading(initial, tariff_at=lambda _: None, tariff_changes=[],
                         zone=zone_of(old, load),
                         max_wh_per_hour=ctx.max_plausible_wh_per_hour)
        old.replace_by(new.id, initial.read_at, ctx.actor)
        return [old, new], new


# -- readings --------------------------------------------------------------------------

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
class TakeReadings(Command):
    """Store and bill a batch of readings (from the API, the poller or a replacement)."""

    action: ClassVar[str] = "take_readings"
    repeat: ClassVar[str] = "bills nothing more: each reading is billed once, by its meter and time"
    items: Sequence[ReadingInput]

    def check(self) -> None:
        if len(self.items) > MAX_READINGS_PER_BATCH:
            raise InvalidRequest(f"at most {MAX_READINGS_PER_BATCH} readings per batch")


@dataclass(frozen=True)
class ChargeReading(Command):
    """One reading of a batch, decided on its meter's billing cursor: billed at most once
    whatever order, and however often, readings arrive."""

    action: ClassVar[str] = "charge_reading"
    # Decided only as one item of a TakeReadings, which the ledger carries out.
    part_of: ClassVar[str] = "TakeReadings"
    meter_id: UUID
    item: ReadingInput

    def transaction_id(self) -> UUID:
        """The charge's id, fixed by (meter, read_at) (worked out once per command)."""
        found = self.__dict__.get("_charge_id")
        if found is None:
            found = charge_id_for(self.meter_id, self.item.read_at)
            object.__setattr__(self, "_charge_id", found)
        return found

    def decide(self, load: Loader, ctx: ReadingContext) -> tuple[list[Any], dict[str, Any]]:
        item = self.item
        reading = Reading(item.read_at, item.total, item.bands)
        try:
            meter = load(self.meter_id, Meter, MeterNotFound)
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
            reading, tariff_at=tariff_lookup(meter, tariffs), tariff_changes=changes,
            zone=zone, max_wh_per_hour=ctx.max_plausible_wh_per_hour,
            chargeable=account is not None, charge_id=self.transaction_id())
        aggregates: list[Any] = [meter]
        if item.from_poll:
            aggregates += ctx.devices.poll_bookkeeping(meter, item.relay, item.power_w,
                                                       item.read_at, load)
        if result.charge_fen > 0:
            assert account is not None and result.transaction_id is not None
            money = MoneyContext(result.transaction_id, reading.read_at, ctx.now, SYSTEM_ACTOR)
            account.charge_consumption(money, wallet=Wallet(meter.kind),
                                       amount_fen=result.charge_fen, meter_no=meter.meter_no)
            aggregates.append(account)
        return aggregates, {
            "billing": result.status, "reason": result.reason, "kind": meter.kind,
            "energy_wh": result.energy_wh, "charge_fen": result.charge_fen,
            "transaction_id": str(result.transaction_id) if result.charge_fen else None}


def reading_problem(item: ReadingInput, now: datetime) -> str | None:
    """Why a reading is refused before its meter is looked at; None if it is not."""
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


# -- helpers ---------------------------------------------------------------------------

def found(load: Loader, aggregate_id: UUID, kind: type, missing: type[DomainError]) -> Any:
    """The aggregate if it is stored, None if it is not."""
    try:
        return load(aggregate_id, kind, missing)
    except missing:
        return None


def same_instances(load: Loader) -> Loader:
    """A loader that gives the same object for the same id, so that several decisions
    in one write (a tariff assignment and the readings it bills) build on each other."""
    seen: dict[UUID, Any] = {}

    def cached(aggregate_id: UUID, kind: type, missing: type[DomainError]) -> Any:
        if aggregate_id not in seen:
            seen[aggregate_id] = load(aggregate_id, kind, missing)
        return seen[aggregate_id]

    return cached


_SPECS: dict[tuple[UUID, int], TariffSpec] = {}


def tariff_lookup(meter: Meter, tariffs: dict[UUID, Tariff]):
    """The meter's tariff at an instant: (tariff id, version, spec), None if none."""
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

