"""A meter: its place on a bus, its account and tariff bindings, and its billing cursor.

Readings themselves are telemetry (stored in SQL); the meter keeps only the last reading
it billed up to (the cursor) and the month's exact cost, so that every charge is decided
from the cursor and no interval is ever charged twice, whatever order readings arrive in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5
from zoneinfo import ZoneInfo

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidRequest
from domain.metering import (
    REGISTER_WH,
    MonthState,
    NoTariff,
    TariffAt,
    local_month,
    price_interval,
    register_delta,
)
from domain.tariff import BANDS

METER_NAMESPACE = uuid5(NAMESPACE_URL, "prepaid-ledger/meter")
CHARGE_NAMESPACE = uuid5(NAMESPACE_URL, "prepaid-ledger/consumption-charge")
KINDS = ("electricity", "water")
MODES = ("prepaid", "monitoring")
# Each profile and the gateway protocol it needs (the register maps themselves are data in
# adapters/profiles.py). A DL/T 645 meter's bus address is its meter number.
PROFILES = {"ref-prepaid-v1": "modbus-tcp", "dlt645-2007": "dlt645-tcp",
            "acrel-ddsy1352": "modbus-rtu-tcp"}
ADDRESSED_BY_METER_NO = ("dlt645-2007",)
ACTIVE = "active"
REPLACED = "replaced"
# A tariff given at registration without an instant applies from the meter's first
# reading: as the meter has no earlier one, from the beginning of time.
FROM_FIRST_READING = datetime.min.replace(tzinfo=timezone.utc)
NO_TARIFF = "no tariff in effect"  # how a reading held for want of a tariff is told


def meter_id_for(meter_no: str) -> UUID:
    return uuid5(METER_NAMESPACE, meter_no)


def charge_id_for(meter_id: UUID, read_at: datetime) -> UUID:
    """A consumption charge's transaction id, fixed by its cause."""
    return uuid5(CHARGE_NAMESPACE, f"{meter_id}/{read_at.isoformat()}")


def check_meter_no(meter_no: str) -> str:
    if not (isinstance(meter_no, str) and len(meter_no) == 12 and meter_no.isdigit()):
        raise InvalidRequest(f"meter_no {meter_no!r} must be 12 digits")
    return meter_no


@dataclass(frozen=True)
class Reading:
    """Cumulative registers as the meter reports them (0.01 kWh, or litres for water)."""

    read_at: datetime
    total: int
    bands: dict[str, int] | None = None


@dataclass(frozen=True)
class ReadingResult:
    status: str  # charged, started, late, duplicate, anomaly, held, rejected
    reason: str | None = None
    energy_wh: int = 0
    charge_fen: int = 0
    transaction_id: UUID | None = None


class Meter(Aggregate):
    @event("Registered")
    def __init__(self, meter_no: str, kind: str, mode: str, site_id: UUID | None,
                 gateway_id: UUID | None, address: int, profile: str, ct_ratio: int,
                 building: str | None, floor: str | None, unit: str | None,
                 actor: dict) -> None:
        self.meter_no = meter_no
        self.kind = kind
        self.mode = mode
        self.site_id = site_id
        self.gateway_id = gateway_id
        self.address = address
        self.profile = profile
        self.ct_ratio = ct_ratio
        self.building = building
        self.floor = floor
        self.unit = unit
        self.status = ACTIVE
        self.account_id: UUID | None = None
        self.tariffs: list[tuple[datetime, UUID]] = []
        self.last: dict | None = None  # the billing cursor: read_at, total, bands
        self.month: dict | None = None
        self.replaced_by: UUID | None = None
        self.flagged: dict | None = None  # the last reading held or found anomalous
        # Readings held for want of a tariff, oldest first (read_at, total, bands): billed
        # once a tariff covers them. Emptied as the billing cursor passes them.
        self.waiting: list[dict] = []
        # Intervals measured without a price (a monitoring meter before its tariff): a
        # common-area pool refuses a period with any; a tariff assigned later prices them.
        self.unpriced: list[dict] = []
        self.started_at: datetime | None = None  # the first reading
        self.priced_spans: list[tuple[datetime, datetime]] = []  # merged, with energy
        # Device state as the platform wants it (the meter reports its own on each poll).
        self.desired_relay = "closed"
        self.relay_reason: str | None = None  # arrears, manual, overload
        self.relay_pending: UUID | None = None  # a relay command not yet confirmed
        self.keep_power = False
        self.keep_power_until: datetime | None = None
        self.thresholds: dict | None = None
        self.online = True
        self.failed_polls = 0

    @classmethod
    def register(cls, *, meter_no: str, kind: str, mode: str, site_id: UUID | None,
                 gateway_id: UUID | None, address: int | None, profile: str,
                 ct_ratio: int, building: str | None = None, floor: str | None = None,
                 unit: str | None = None, actor: dict) -> Meter:
        check_meter_no(meter_no)
        if kind not in KINDS:
            raise InvalidRequest(f"kind must be one of {', '.join(KINDS)}")
        if mode not in MODES:
            raise InvalidRequest(f"mode must be one of {', '.join(MODES)}")
        if profile not in PROFILES:
            raise InvalidRequest(f"profile must be one of {', '.join(PROFILES)}")
        if profile in ADDRESSED_BY_METER_NO:
            address = 0  # the meter number is the address on the bus
        elif address is None or not 1 <= address <= 247:
            raise InvalidRequest("address must be 1 to 247")
        if not 1 <= ct_ratio <= 10_000:
            raise InvalidRequest("ct_ratio must be 1 to 10000")
        return cls._create(cls.Registered, id=meter_id_for(meter_no), meter_no=meter_no,
                           kind=kind, mode=mode, site_id=site_id, gateway_id=gateway_id,
                           address=address, profile=profile, ct_ratio=ct_ratio,
                           building=building, floor=floor, unit=unit, actor=actor)

    def registration(self) -> dict[str, Any]:
        return {"meter_no": self.meter_no, "kind": self.kind, "mode": self.mode,
                "site_id": self.site_id, "gateway_id": self.gateway_id,
                "address": self.address, "profile": self.profile, "ct_ratio": self.ct_ratio,
                "building": self.building, "floor": self.floor, "unit": self.unit}

    # -- bindings --------------------------------------------------------------------

    def bind(self, account_id: UUID, actor: dict) -> None:
        self._require_active()
        if self.account_id == account_id:
            return
        if self.account_id is not None:
            raise InvalidRequest(f"meter {self.meter_no} is bound to another account; "
                                 "unbind it first")
        self._bound(account_id=account_id, actor=actor)

    @event("BoundToAccount")
    def _bound(self, account_id: UUID, actor: dict) -> None:
        self.account_id = account_id

    def unbind(self, actor: dict) -> None:
        if self.account_id is None:
            raise InvalidRequest(f"meter {self.meter_no} is not bound")
        self._unbound(account_id=self.account_id, actor=actor)

    @event("Unbound")
    def _unbound(self, account_id: UUID, actor: dict) -> None:
        self.account_id = None

    def assign_tariff(self, tariff_id: UUID, effective_from: datetime, actor: dict,
                      from_first_reading: bool = False) -> None:
        """Price the meter with ``tariff_id`` from ``effective_from`` (or, with
        ``from_first_reading``, from its first reading) until the next assignment. It may
        be backdated to the last billed reading, and further only where it prices no
        energy that has a price: billed energy keeps its price."""
        self._require_active()
        if from_first_reading and self.last is not None:
            raise InvalidRequest(f"meter {self.meter_no} has readings already: give the "
                                 "instant the tariff takes effect")
        if self.last is not None and effective_from < self.last["read_at"] and \
                not self._only_unpriced_from(effective_from):
            raise InvalidRequest(
                "a tariff cannot take effect before the last billed reading "
                f"({self.last['read_at'].isoformat()})")
        self._tariff_assigned(tariff_id=tariff_id, effective_from=effective_from, actor=actor,
                              from_first_reading=from_first_reading)

    class TariffAssigned(Aggregate.Event):
        """Version 2 says whether the tariff applies from the meter's first reading."""

        class_version = 2
        tariff_id: UUID
        effective_from: datetime  # when it was assigned, if from_first_reading
        actor: dict
        from_first_reading: bool

        @staticmethod
        def upcast_v1_v2(state: dict) -> None:
            state["from_first_reading"] = False

    @event(TariffAssigned)
    def _tariff_assigned(self, tariff_id: UUID, effective_from: datetime, actor: dict,
                         from_first_reading: bool) -> None:
        # In effect from its instant until the next assignment (one at the same instant
        # is replaced).
        start = FROM_FIRST_READING if from_first_reading else effective_from
        self.tariffs = sorted([*((when, t) for when, t in self.tariffs if when != start),
                               (start, tariff_id)], key=lambda entry: entry[0])

    def _only_unpriced_from(self, effective_from: datetime) -> bool:
        """Whether an assignment from this instant (in effect until the next one) leaves
        the price of every priced interval alone, so that it may reach back before the
        billing cursor: over a prepaid meter's time before its first reading, or over a
        monitoring meter's energy measured without a price."""
        assert self.last is not None and self.started_at is not None
        later = [when for when, _ in self.tariffs if when > effective_from]
        until = later[0] if later else None
        spans = self.priced_spans if self.mode == "monitoring" else \
            [(self.started_at, self.last["read_at"])]
        return not any(end > effective_from and (until is None or start < until)
                       for start, end in spans if start < end)

    def price_unpriced(self, *, tariff_at: TariffAt, tariff_changes: list[datetime],
                       zone: ZoneInfo) -> int:
        """Price the intervals measured without a price that a tariff now covers, in
        order; the energy was measured already, so this changes cost only (a monitoring
        meter is never charged). Each month's tiers count from its first such interval."""
        month: MonthState | None = None
        priced_count = 0
        for interval in list(self.unpriced):
            start, end = interval["start"], interval["end"]
            if month is None or month.month != local_month(start, zone):
                month = MonthState(local_month(start, zone))
            try:
                priced = price_interval(start=start, end=end, energy_wh=interval["energy_wh"],
                                        band_energy_wh=interval["band_energy_wh"],
                                        tariff_at=tariff_at, change_points=tariff_changes,
                                        zone=zone, month=month)
            except NoTariff:
                month = None
                continue
            month = priced.month_after
            self._unpriced_priced(read_at=end, previous_read_at=start,
                                  energy_wh=interval["energy_wh"],
                                  slices=[s.as_dict() for s in priced.slices],
                                  local_day=interval["local_day"])
            priced_count += 1
        return priced_count

    @event("UnpricedConsumptionPriced")
    def _unpriced_priced(self, read_at: datetime, previous_read_at: datetime, energy_wh: int,
                         slices: list, local_day: str) -> None:
        self.unpriced = [i for i in self.unpriced if i["end"] != read_at]
        spans: list[tuple[datetime, datetime]] = []
        for start, end in sorted([*self.priced_spans, (previous_read_at, read_at)]):
            if spans and spans[-1][1] == start:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((start, end))
        self.priced_spans = spans

    def tariff_at(self, when: datetime) -> UUID | None:
        found = None
        for effective_from, tariff_id in self.tariffs:
            if effective_from <= when:
                found = tariff_id
        return found

    def tariff_changes(self, start: datetime, end: datetime) -> list[datetime]:
        return [when for when, _ in self.tariffs if start < when < end]

    def tariff_ids(self) -> set[UUID]:
        return {tariff_id for _, tariff_id in self.tariffs}

    # -- readings --------------------------------------------------------------------

    def take_reading(self, reading: Reading, *, tariff_at: TariffAt,
                     tariff_changes: list[datetime], zone: ZoneInfo,
                     max_wh_per_hour: int, chargeable: bool = True,
                     charge_id: UUID | None = None) -> ReadingResult:
        """Decide what a reading means for billing and record it as an event.
        ``charge_id``: ``charge_id_for(self.id, reading.read_at)`` if the caller has it."""
        if self.status != ACTIVE:
            return ReadingResult("rejected", f"meter {self.meter_no} was replaced")
        if self.last is None:
            self._reading_started(read_at=reading.read_at, total=reading.total,
                                  bands=reading.bands, month=local_month(reading.read_at, zone))
            return ReadingResult("started", "first reading: the starting point of billing")
        last_at: datetime = self.last["read_at"]
        if reading.read_at < last_at:
            return ReadingResult("late", "older than the last billed reading; stored, "
                                         "its energy is already billed")
        if reading.read_at == last_at:
            if reading.total == self.last["total"]:
                return ReadingResult("duplicate")
            return ReadingResult("rejected", "another value was already billed for this time")
        waiting = next((w for w in self.waiting if w["read_at"] == reading.read_at), None)
        if waiting is not None and waiting["total"] != reading.total:
            return ReadingResult("rejected", "another value is held for this time")
        if waiting is None and \
                self.flagged == {"read_at": reading.read_at, "total": reading.total}:
            return ReadingResult("duplicate", "flagged already")
        delta = register_delta(self.last["total"], reading.total)
        if delta is None:
            reason = (f"register went backwards from {self.last['total']} to "
                      f"{reading.total}")
            self._anomaly(read_at=reading.read_at, total=reading.total, reason=reason)
            return ReadingResult("anomaly", reason)
        energy_wh = self._to_energy(delta)
        band_energy = self._band_energy(reading)
        hours = (reading.read_at - last_at) / timedelta(hours=1)
        if energy_wh > max_wh_per_hour * max(hours, 1 / 60):
            reason = (f"{energy_wh} Wh in {hours:.2f} h is above the plausible "
                      f"{max_wh_per_hour} Wh per hour")
            self._held(read_at=reading.read_at, total=reading.total, energy_wh=energy_wh,
                       reason=reason, bands=reading.bands, awaiting_tariff=False)
            return ReadingResult("held", reason)
        month = MonthState(**self.month) if self.month else MonthState(
            local_month(last_at, zone))
        try:
            priced = price_interval(start=last_at, end=reading.read_at, energy_wh=energy_wh,
                                    band_energy_wh=band_energy, tariff_at=tariff_at,
                                    change_points=tariff_changes, zone=zone, month=month)
        except NoTariff as error:
            if self.mode == "prepaid":
                if waiting is not None:
                    return ReadingResult("duplicate", f"held already: {error}")
                self._held(read_at=reading.read_at, total=reading.total, energy_wh=energy_wh,
                           reason=str(error), bands=reading.bands, awaiting_tariff=True)
                return ReadingResult("held", str(error))
            priced = None  # a monitoring meter without a tariff: energy only
        charge_fen = priced.charge_fen if priced and self.mode == "prepaid" \
            and self.account_id and chargeable else 0
        transaction_id = charge_id or charge_id_for(self.id, reading.read_at)
        self._measured(
            read_at=reading.read_at, previous_read_at=last_at, total=reading.total,
            bands=reading.bands, energy_wh=energy_wh,
            slices=[s.as_dict() for s in priced.slices] if priced else [],
            month_after=priced.month_after.as_dict() if priced else self.month,
            charge_fen=charge_fen, account_id=self.account_id, transaction_id=transaction_id,
            local_day=(reading.read_at - timedelta(microseconds=1)).astimezone(zone)
            .date().isoformat())
        reason = None
        if self.mode == "prepaid" and (self.account_id is None or not chargeable):
            reason = "meter not bound to an open account: measured, not charged"
        return ReadingResult("charged", reason, energy_wh, charge_fen, transaction_id)

    def _to_energy(self, register_units: int) -> int:
        per_unit = REGISTER_WH if self.kind == "electricity" else 1
        return register_units * per_unit * self.ct_ratio

    def _band_energy(self, reading: Reading) -> dict[str, int] | None:
        return self._band_energy_between(self.last["bands"] if self.last else None,
                                         reading.bands)

    def _band_energy_between(self, before: dict | None,
                             after: dict | None) -> dict[str, int] | None:
        if not before or not after:
            return None
        energy = {}
        for band in BANDS:
            delta = register_delta(before.get(band, 0), after.get(band, 0))
            if delta is None:
                return None  # a band register misbehaved: fall back to the schedule
            energy[band] = self._to_energy(delta)
        return energy

    @event("ReadingStarted")
    def _reading_started(self, read_at: datetime, total: int, bands: dict | None,
                         month: str) -> None:
        self.last = {"read_at": read_at, "total": total, "bands": bands}
        self.month = MonthState(month).as_dict()
        self.started_at = read_at

    @event("ConsumptionMeasured")
    def _measured(self, read_at: datetime, previous_read_at: datetime, total: int,
                  bands: dict | None, energy_wh: int, slices: list, month_after: dict | None,
                  charge_fen: int, account_id: UUID | None, transaction_id: UUID,
                  local_day: str) -> None:
        # local_day: the site-local day in which the interval ends (a reading at 00:00
        # closes the day before); daily reports count the interval there.
        if slices:
            if self.priced_spans and self.priced_spans[-1][1] == previous_read_at:
                self.priced_spans[-1] = (self.priced_spans[-1][0], read_at)
            else:
                self.priced_spans.append((previous_read_at, read_at))
        elif energy_wh:
            self.unpriced.append({
                "start": previous_read_at, "end": read_at, "energy_wh": energy_wh,
                "band_energy_wh": self._band_energy_between(
                    self.last["bands"] if self.last else None, bands),
                "local_day": local_day})
        self.last = {"read_at": read_at, "total": total, "bands": bands}
        self.month = month_after
        if self.waiting:
            self.waiting = [w for w in self.waiting if w["read_at"] > read_at]

    @event("ReadingAnomalyDetected")
    def _anomaly(self, read_at: datetime, total: int, reason: str) -> None:
        self.flagged = {"read_at": read_at, "total": total}

    class ReadingHeldForReview(Aggregate.Event):
        """Version 2 keeps the band registers, and whether the reading waits for a tariff
        (then it is billed once one covers it)."""

        class_version = 2
        read_at: datetime
        total: int
        energy_wh: int
        reason: str
        bands: dict | None
        awaiting_tariff: bool

        @staticmethod
        def upcast_v1_v2(state: dict) -> None:
            state["bands"] = None
            state["awaiting_tariff"] = state["reason"].startswith(NO_TARIFF)

    @event(ReadingHeldForReview)
    def _held(self, read_at: datetime, total: int, energy_wh: int, reason: str,
              bands: dict | None, awaiting_tariff: bool) -> None:
        self.flagged = {"read_at": read_at, "total": total}
        if awaiting_tariff and (self.last is None or read_at > self.last["read_at"]):
            self.waiting = sorted([*(w for w in self.waiting if w["read_at"] != read_at),
                                   {"read_at": read_at, "total": total, "bands": bands}],
                                  key=lambda w: w["read_at"])

    def unpriced_wh(self, first_day: str, last_day: str) -> int:
        """Energy measured without a price over site-local days, inclusive."""
        return sum(i["energy_wh"] for i in self.unpriced
                   if first_day <= i["local_day"] <= last_day)

    # -- device state ----------------------------------------------------------------

    def order_relay(self, relay: str, command_id: UUID, reason: str, actor: dict) -> None:
        """Record that the platform now wants the relay ``open`` or ``closed``."""
        assert relay in ("open", "closed")
        self._require_active()
        self._relay_ordered(relay=relay, command_id=command_id, reason=reason, actor=actor)

    @event("RelayOrdered")
    def _relay_ordered(self, relay: str, command_id: UUID, reason: str, actor: dict) -> None:
        self.desired_relay = relay
        self.relay_reason = reason if relay == "open" else None
        self.relay_pending = command_id

    @event("RelayConfirmed")
    def confirm_relay(self, command_id: UUID, relay: str, keep_power: bool) -> None:
        if self.relay_pending == command_id:
            self.relay_pending = None

    # The relay as a command last read it back from the (identity-checked) meter; polls
    # and readings are telemetry and say it in the readings instead.
    relay_seen: dict | None = None

    def relay_read_back(self, command_id: UUID, relay: str, keep_power: bool,
                        at: datetime) -> None:
        assert relay in ("open", "closed")
        self._relay_read_back(command_id=command_id, relay=relay, keep_power=keep_power,
                              at=at)

    @event("RelayReadBack")
    def _relay_read_back(self, command_id: UUID, relay: str, keep_power: bool,
                         at: datetime) -> None:
        self.relay_seen = {"relay": relay, "keep_power": keep_power, "at": at,
                           "command_id": command_id}

    def set_keep_power(self, until: datetime | None, reason: str, actor: dict) -> None:
        self._require_active()
        if not reason or not reason.strip():
            raise InvalidRequest("keep-power needs a reason")
        self._keep_power_set(until=until, reason=reason, actor=actor)

    @event("KeepPowerSet")
    def _keep_power_set(self, until: datetime | None, reason: str, actor: dict) -> None:
        self.keep_power = True
        self.keep_power_until = until
        self.desired_relay = "closed"
        self.relay_reason = None

    def release_keep_power(self, reason: str, actor: dict) -> None:
        if not self.keep_power:
            raise InvalidRequest(f"meter {self.meter_no} has no keep-power")
        self._keep_power_released(reason=reason, actor=actor)

    @event("KeepPowerReleased")
    def _keep_power_released(self, reason: str, actor: dict) -> None:
        self.keep_power = False
        self.keep_power_until = None

    def keep_power_lapsed(self, now: datetime) -> bool:
        return self.keep_power and self.keep_power_until is not None and \
            self.keep_power_until <= now

    def set_thresholds(self, alarm1_fen: int, alarm2_fen: int, overload_w: int,
                       actor: dict) -> None:
        if not (alarm1_fen >= alarm2_fen >= 0 and overload_w > 0):
            raise InvalidRequest("thresholds need alarm1 >= alarm2 >= 0 and overload > 0")
        self._thresholds_set(alarm1_fen=alarm1_fen, alarm2_fen=alarm2_fen,
                             overload_w=overload_w, actor=actor)

    @event("ThresholdsSet")
    def _thresholds_set(self, alarm1_fen: int, alarm2_fen: int, overload_w: int,
                        actor: dict) -> None:
        self.thresholds = {"alarm1_fen": alarm1_fen, "alarm2_fen": alarm2_fen,
                           "overload_w": overload_w}

    def poll_failed(self, error: str, at: datetime, offline_after: int) -> bool:
        """Count a failed poll; True when this one makes the meter offline."""
        if not self.online:
            return False  # already offline: nothing new to record
        if self.failed_polls + 1 >= offline_after:
            self._went_offline(failures=self.failed_polls + 1, error=error, at=at)
            return True
        self._poll_failed(error=error, at=at)
        return False

    @event("PollFailed")
    def _poll_failed(self, error: str, at: datetime) -> None:
        self.failed_polls += 1

    @event("WentOffline")
    def _went_offline(self, failures: int, error: str, at: datetime) -> None:
        self.failed_polls = failures
        self.online = False

    def offline_with_gateway(self, gateway_id: UUID, error: str, at: datetime) -> bool:
        """Its gateway cannot be reached: offline at once (the gateway carries the one
        alert). True when the meter was online."""
        if not self.online:
            return False
        self._offline_with_gateway(gateway_id=gateway_id, error=error, at=at)
        return True

    @event("OfflineWithGateway")
    def _offline_with_gateway(self, gateway_id: UUID, error: str, at: datetime) -> None:
        self.online = False

    def poll_succeeded(self, at: datetime) -> None:
        if not self.online or self.failed_polls:
            self._came_online(at=at, was_offline=not self.online)

    @event("CameOnline")
    def _came_online(self, at: datetime, was_offline: bool) -> None:
        self.online = True
        self.failed_polls = 0

    @event("OverloadDetected")
    def overload_detected(self, power_w: int, limit_w: int, at: datetime) -> None:
        pass

    @event("RelayMismatchFound")
    def relay_mismatch(self, wanted: str, reported: str, at: datetime) -> None:
        pass

    # -- replacement -----------------------------------------------------------------

    def replace_by(self, new_meter_id: UUID, replaced_at: datetime, actor: dict) -> None:
        self._require_active()
        self._replaced(new_meter_id=new_meter_id, replaced_at=replaced_at,
                       account_id=self.account_id, actor=actor)

    @event("Replaced")
    def _replaced(self, new_meter_id: UUID, replaced_at: datetime, account_id: UUID | None,
                  actor: dict) -> None:
        self.status = REPLACED
        self.replaced_by = new_meter_id
        self.account_id = None

    def _require_active(self) -> None:
        if self.status != ACTIVE:
            raise InvalidRequest(f"meter {self.meter_no} was replaced")
